"""Worker of test_distributed.py: 2 DPO steps on text pairs, one process or under torchrun; saves the weights."""

import sys

import torch
from accelerate import Accelerator
from safetensors.torch import save_file
from transformers import Qwen2ForCausalLM

from workbench.models.tiny import tiny_qwen2_config
from workbench.models.tokenizer import build_tokenizer, format_prompt
from workbench.preference.pairs import PreferencePair
from workbench.preference.trainer import PreferenceConfig, train_preference

torch.manual_seed(0)
tok = build_tokenizer()
model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok))).float()
pairs = [PreferencePair(f"p{i}", None, format_prompt(f"{i}+{i}"), f"answer: {2 * i}", f"answer: {2 * i + 1}") for i in range(12)]
before = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if "embed" not in k}
acc = Accelerator(cpu=True)
train_preference(model, tok, pairs, PreferenceConfig(loss="sigmoid", steps=2, batch_size=4, lr=1e-2), accelerator=acc)
if acc.is_main_process:
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items() if "embed" not in k}
    save_file({**{f"after.{k}": v for k, v in state.items()}, **{f"before.{k}": v for k, v in before.items()},
               "world": torch.tensor(acc.num_processes)}, sys.argv[1])
