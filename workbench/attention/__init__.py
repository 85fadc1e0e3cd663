"""Block-sparse attention: selectors (registry), kernels, HF integration, information-loss metrics.

    from workbench.attention import SparseAttentionConfig, enable_sparse_attention
    enable_sparse_attention(model, SparseAttentionConfig(selector="phsa", top_k=2), tokenizer=tok)

Modules: `config` (the settings record), `blocks` (geometry, selection -> token mask, sparsity),
`selectors` (moba, infllm_v2, phsa, nsa, oracle), `nsa` (trainable compressed branch + gates),
`kernels` (dense reference, gather-based block-sparse attention), `flex` (FlexAttention BlockMask),
`sparse` (one call: select + kernel), `hf` (transformers AttentionInterface), `punctuation`,
`metrics` (relative error, mass recall, block recall, KL, ΔNLL).
"""

from workbench.attention.blocks import BlockSelection, selection_mask, sparsity
from workbench.attention.config import SparseAttentionConfig
from workbench.attention.flex import flex_block_sparse_attention
from workbench.attention.hf import (IMPLEMENTATION, disable_sparse_attention, enable_sparse_attention,
                                    record_attention, register_sparse_attention)
from workbench.attention.kernels import dense_attention, gather_block_sparse_attention
from workbench.attention.metrics import (LayerLoss, ModelLoss, attention_mass_recall, block_recall, delta_nll,
                                         information_loss_table, layer_information_loss, model_information_loss,
                                         next_token_kl, relative_output_error)
from workbench.attention.nsa import NSABranch
from workbench.attention.punctuation import punctuation_mask, punctuation_token_ids
from workbench.attention.selectors import SELECTORS, phsa_block_keys, select_blocks
from workbench.attention.sparse import SparseOutput, causal_sdpa, sparse_attention

__all__ = [
    "BlockSelection", "IMPLEMENTATION", "LayerLoss", "ModelLoss", "NSABranch", "SELECTORS", "SparseAttentionConfig",
    "SparseOutput", "attention_mass_recall", "block_recall", "causal_sdpa", "delta_nll", "dense_attention",
    "disable_sparse_attention", "enable_sparse_attention", "flex_block_sparse_attention",
    "gather_block_sparse_attention", "information_loss_table", "layer_information_loss", "model_information_loss",
    "next_token_kl", "phsa_block_keys", "punctuation_mask", "punctuation_token_ids", "record_attention",
    "register_sparse_attention", "relative_output_error", "select_blocks", "selection_mask", "sparse_attention",
    "sparsity",
]
