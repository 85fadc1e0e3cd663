"""Worker for test_distributed.py: one policy update on a fixed global batch, sharded over processes.

Run as `torchrun --nproc_per_node 2 dist_update_worker.py OUT AGG [pack]` (or plain python for 1 process);
`pack`: the padding-free packed update (`RLConfig.pack`), whose one forward per backward DDP can run.
"""

import random
import sys

import torch
from accelerate import Accelerator, PartialState
from safetensors.torch import save_file
from transformers import Qwen2ForCausalLM

from workbench.models.tiny import tiny_qwen2_config
from workbench.models.tokenizer import build_tokenizer, format_prompt
from workbench.rl import RLConfig, RewardSpec, RLTask, compute_advantages
from workbench.rl.collect import CollectConfig, collect_rollout
from workbench.rl.update import score_rollout, update_policy
from workbench.utils import seeded_generator


def main(out: str, agg: str, pack: bool = False) -> None:
    acc = Accelerator(cpu=True)
    torch.manual_seed(0)
    tok = build_tokenizer()
    model = Qwen2ForCausalLM(tiny_qwen2_config(len(tok), hidden=32, layers=1, heads=2, kv_heads=1)).eval()
    task = RLTask("digits", lambda n, rng: [str(rng.randint(0, 9)) for _ in range(n)], format_prompt,
                  [RewardSpec("digits", lambda c, p: sum(ch.isdigit() for ch in c) / max(len(c), 1))])
    # the same global batch on every process (same seeds), then each keeps its shard of prompts
    ro, _ = collect_rollout(model, tok, task, CollectConfig(num_prompts=4, num_generations=4, max_new_tokens=6), generator=seeded_generator(0, 0), rng=random.Random(0))
    # groups 0 and 1 (the first process's shard) all-equal: that process runs no row that carries
    # gradient, yet must join DDP's all-reduce (the update leaves zero-advantage rows out)
    ro.rewards[:4], ro.rewards[4:8] = 1.0, 0.0
    ro.old_logp, ro.entropy = score_rollout(model, ro, 64, 1.0)
    adv = compute_advantages("grpo", ro.rewards, ro.group_ids, ro.completion_mask)
    rows = len(ro) // acc.num_processes
    shard = torch.arange(acc.process_index * rows, (acc.process_index + 1) * rows)
    cfg = RLConfig(lr=1e-2, micro_batch_size=3, num_epochs=2, agg=agg, loss="dapo", pack=pack)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)  # SGD: the update is the gradient, compared exactly
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    before = {f"before.{k}": v.detach().clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    model, opt = acc.prepare(model, opt)
    model.train()
    update_policy(model, opt, sched, acc, ro.select(shard), adv[shard], cfg, torch.Generator().manual_seed(0))
    if acc.is_main_process:
        after = {f"after.{k}": v.detach().contiguous() for k, v in acc.unwrap_model(model).state_dict().items()
                 if k != "lm_head.weight"}  # tied to the embedding
        save_file({**before, **after, "world": torch.tensor(acc.num_processes)}, out)
    finish()


def finish() -> None:
    """Every process waits for the others, then tears the process group down before exiting: a process
    that exits with its gloo group alive aborts at interpreter exit now and then ("terminate called
    without an active exception", SIGABRT), which fails torchrun although the update was right."""
    PartialState().wait_for_everyone()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], len(sys.argv) > 3 and sys.argv[3] == "pack")
