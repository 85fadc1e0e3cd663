"""A run's folder (`RLConfig.output_dir`): `metrics.jsonl`, `checkpoint/`, and the checks that keep it whole.

- **One run per folder**: `output_dir/.lock` holds the owner's PID; a second live run on the same folder stops
  with one sentence (a lock left by a dead process is taken over).
- **Resume checks what it resumes** (`resume=True`): a checkpoint interrupted mid-swap is recovered first
  (`checkpoint.recover_checkpoint`); a `checkpoint/` folder with no complete checkpoint in it stops the run
  instead of silently starting over; the saved config is compared with the new one and every differing
  field is named, except those a resumed run may change (`RESUMABLE_CHANGES`: steps, logging, evaluation,
  checkpointing, device) and those listed in `RLConfig.resume_changes` on purpose.
- `metrics.jsonl` holds exactly the steps the checkpoint covers.
"""

from __future__ import annotations

import json
import os

from workbench.train.checkpoint import pid_alive, load_checkpoint, recover_checkpoint, save_checkpoint
from workbench.train.events import ScalarEvents
from workbench.rl.config import RLConfig, jsonable_config
from workbench.rl.selective import PromptHistory

#: fields a resumed run may change without saying so: how long it runs and what it logs, not what it computes
RESUMABLE_CHANGES = frozenset({"steps", "resume", "resume_changes", "progress", "output_dir", "checkpoint_every",
                               "eval_every", "eval_n", "device"})


class RunDir:
    """The folder of one run (nothing at all when `cfg.output_dir` is None). Only the main process writes."""

    def __init__(self, cfg: RLConfig, main: bool = True):
        self.cfg, self.main = cfg, main
        self.ckpt = os.path.join(cfg.output_dir, "checkpoint") if cfg.output_dir else None
        self.log_path = os.path.join(cfg.output_dir, "metrics.jsonl") if cfg.output_dir else None
        self.lock_path = os.path.join(cfg.output_dir, ".lock") if cfg.output_dir else None
        self.events: ScalarEvents | None = None  # TensorBoard scalars beside metrics.jsonl, opened by `resume`
        if cfg.output_dir and main:
            os.makedirs(cfg.output_dir, exist_ok=True)
            self._lock()

    def _lock(self) -> None:
        try:
            with open(self.lock_path) as f:
                owner = int(f.read().strip() or 0)
        except (OSError, ValueError):
            owner = 0
        if owner and owner != os.getpid() and pid_alive(owner):
            raise RuntimeError(f"output_dir {self.cfg.output_dir!r} is in use by another run (process {owner}); "
                               "give this run its own output_dir")
        with open(self.lock_path, "w") as f:
            f.write(str(os.getpid()))

    def release(self) -> None:
        """Close the event file; remove the lock if this process owns it."""
        if self.events is not None:
            self.events.close()
            self.events = None
        if not (self.lock_path and self.main):
            return
        try:
            with open(self.lock_path) as f:
                mine = f.read().strip() == str(os.getpid())
            if mine:
                os.remove(self.lock_path)
        except OSError:
            pass

    def resume(self, model, optimizer, scheduler) -> tuple[int, list, PromptHistory]:
        """(start step, history, prompt history): from the checkpoint when `cfg.resume`, else a fresh start
        (which truncates `metrics.jsonl`)."""
        start, history, prompt_history = 0, [], PromptHistory()
        if self.cfg.resume and self.ckpt:
            found = recover_checkpoint(self.ckpt) if self.main else os.path.exists(os.path.join(self.ckpt, "state.json"))
            if not found and os.path.isdir(self.ckpt) and os.listdir(self.ckpt):
                raise RuntimeError(f"{self.ckpt} holds no complete checkpoint (no state.json); move it away to start "
                                   "afresh, or point output_dir elsewhere")
            if found:
                meta = load_checkpoint(self.ckpt, model=model, optimizer=optimizer, scheduler=scheduler)
                check_resumed_config(meta["extra"].get("config"), self.cfg)
                start, history = meta["step"], meta["extra"].get("history", [])
                prompt_history = PromptHistory.from_state_dict(meta["extra"].get("prompt_history"))
        if self.log_path and self.main:
            with open(self.log_path, "w") as f:
                f.writelines(json.dumps(h) + "\n" for h in history)
            self.events = ScalarEvents(self.cfg.output_dir, purge_step=start + 1)
        return start, history, prompt_history

    def log(self, metrics: dict, bar) -> None:
        if not self.main:
            return
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(metrics) + "\n")
        if self.events is not None:
            self.events.write(metrics)
        bar.set_postfix(reward=f"{metrics.get('reward_mean', float('nan')):.2f}",
                        **({"acc": f"{metrics['eval_accuracy']:.2f}"} if "eval_accuracy" in metrics else {}))

    def checkpoint(self, done: int, policy, optimizer, scheduler, history: list, prompt_history: PromptHistory) -> None:
        every = self.cfg.checkpoint_every
        if self.ckpt and self.main and ((every and done % every == 0) or done == self.cfg.steps):
            save_checkpoint(self.ckpt, model=policy, optimizer=optimizer, scheduler=scheduler, step=done,
                            extra={"history": history, "config": jsonable_config(self.cfg),
                                   "prompt_history": prompt_history.state_dict()})


def check_resumed_config(saved: dict | None, cfg: RLConfig) -> None:
    """A ValueError naming every field where `cfg` differs from the checkpoint's `saved` config, other than
    `RESUMABLE_CHANGES` and `cfg.resume_changes` (a checkpoint without a config is accepted as it is)."""
    if not saved:
        return
    now = jsonable_config(cfg)
    allowed = RESUMABLE_CHANGES | set(cfg.resume_changes)
    changed = sorted(k for k in saved if k not in allowed and k in now and saved[k] != now[k])  # fields added since are not compared
    if changed:
        diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {now.get(k)!r}" for k in changed)
        raise ValueError(f"resume would change what the checkpoint was trained with ({diffs}); restore those values, "
                         f"or list the fields in RLConfig.resume_changes to change them on purpose")
