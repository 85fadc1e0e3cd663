"""Worker for test_distributed: a short GRPO run with GRESO selective rollouts; each process writes the
prompt history it ended with (run under `torchrun --nproc_per_node 2`, or alone)."""

import json
import sys

import torch
from accelerate import PartialState
from transformers import Qwen2ForCausalLM

from dist_update_worker import finish  # the script's folder is on sys.path
from workbench.models.tiny import tiny_qwen2_config
from workbench.models.tokenizer import build_tokenizer, format_prompt
from workbench.rl import RLConfig, RLTask, RewardSpec, train


def main(out_prefix: str) -> None:
    torch.manual_seed(0)
    tok = build_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok), hidden=32, layers=1, heads=2, kv_heads=1)).eval()
    # prompts '0'–'4' always score 1 (all-equal groups), '5'–'9' a graded reward
    reward = RewardSpec("r", lambda c, p: 1.0 if int(p) < 5 else sum(ch.isdigit() for ch in c) / max(len(c), 1))
    task = RLTask("settled", lambda n, rng: [str(rng.randint(0, 9)) for _ in range(n)], format_prompt, [reward])
    cfg = RLConfig(steps=3, num_prompts=4, num_generations=4, max_new_tokens=6, micro_batch_size=8, lr=1e-2,
                   explore=0.3, progress=False)
    res = train(model, tok, task, cfg)
    rank = PartialState().process_index
    sampled = sum(h["groups_sampled"] for h in res.history)
    with open(f"{out_prefix}.{rank}.json", "w") as f:
        json.dump({"streak": res.prompt_history.streak, "groups_sampled": sampled, "world": PartialState().num_processes}, f)
    finish()


if __name__ == "__main__":
    main(sys.argv[1])
