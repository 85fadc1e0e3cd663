"""Training checkpoints as safetensors + plain JSON: model, optimizer, scheduler, RNG, step.

Nothing is pickled. The optimizer's per-parameter tensors go to `optimizer.safetensors`
(`state.<param index>.<name>`), its hyper-parameters and scalars to `state.json`; RNG states
(torch CPU/CUDA as uint8 tensors, numpy, python) are saved too.

Atomic replacement: the new folder is written as `<path>.tmp-<pid>` (`state.json` last, every file
fsynced), then the old one is renamed aside to `<path>.old-<pid>`, the new one renamed into place, and the
old one removed. At every instant one complete checkpoint exists under one of those three names;
`recover_checkpoint` (run by `load_checkpoint` and by the trainer before a resume) puts the newest
complete one back at `<path>` and removes the leftovers of dead processes.
"""

from __future__ import annotations

import glob
import json
import os
import random
import shutil
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file


#: test hook: called with "written", "old_moved", "new_moved" during the swap (a test raises there to
#: simulate a kill at that instant)
_SWAP_HOOK: Callable[[str], None] | None = None


def _hook(stage: str) -> None:
    if _SWAP_HOOK is not None:
        _SWAP_HOOK(stage)


def _fsync_dir(path: str) -> None:
    for name in os.listdir(path):
        with open(os.path.join(path, name), "rb") as f:
            os.fsync(f.fileno())
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _complete(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, "state.json"))


def _step_of(folder: str) -> int:
    try:
        with open(os.path.join(folder, "state.json")) as f:
            return int(json.load(f).get("step", -1))
    except (OSError, ValueError):
        return -1


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (this process counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_checkpoint(path: str) -> bool:
    """Make `path` the newest complete checkpoint among `path`, `path.tmp-*` and `path.old-*` left by a
    process that died mid-swap, and remove the leftovers of dead processes (a live process's are its
    own business). Returns whether a complete checkpoint is now at `path`."""
    leftovers = []
    for cand in glob.glob(f"{glob.escape(path)}.tmp-*") + glob.glob(f"{glob.escape(path)}.old-*"):
        try:
            pid = int(cand.rsplit("-", 1)[1])
        except ValueError:
            continue
        if not pid_alive(pid) or pid == os.getpid():
            leftovers.append(cand)
    best = max((c for c in leftovers if _complete(c)), key=_step_of, default=None)
    if best is not None and (not _complete(path) or _step_of(best) > _step_of(path)):
        if os.path.exists(path):
            aside = f"{path}.old-{os.getpid()}"
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(path, aside)
            leftovers.append(aside)
        os.replace(best, path)
        leftovers.remove(best)
    for c in leftovers:
        shutil.rmtree(c, ignore_errors=True)
    return _complete(path)


def _model_state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_checkpoint(path: str, *, model, optimizer, scheduler, step: int, extra: dict | None = None) -> str:
    """Write the checkpoint folder `path` atomically; returns `path`."""
    tmp = f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    state = _model_state(model)
    # tied weights share storage: safetensors refuses aliases, so store each storage once
    seen, unique, aliases = {}, {}, {}
    for k, v in state.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
        if key in seen:
            aliases[k] = seen[key]
        else:
            seen[key] = k
            unique[k] = v.clone()
    save_file(unique, os.path.join(tmp, "model.safetensors"))
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, st in opt["state"].items():
        for name, val in st.items():
            if torch.is_tensor(val):
                tensors[f"state.{idx}.{name}"] = val.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = val
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np_state[1].astype(np.int64))
    save_file(tensors, os.path.join(tmp, "optimizer.safetensors"))
    py_state = random.getstate()
    meta = {
        "step": step, "aliases": aliases, "param_groups": opt["param_groups"], "optimizer_scalars": scalars,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng_numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "rng_python": [py_state[0], list(py_state[1]), py_state[2]], "extra": extra or {},
    }
    with open(os.path.join(tmp, "state.json"), "w") as f:  # written last: its presence marks a complete folder
        json.dump(meta, f)
    _fsync_dir(tmp)
    _hook("written")
    old = f"{path}.old-{os.getpid()}"
    if os.path.exists(path):
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    _hook("old_moved")
    os.replace(tmp, path)
    _hook("new_moved")
    shutil.rmtree(old, ignore_errors=True)
    return path


def load_checkpoint(path: str, *, model, optimizer, scheduler) -> dict:
    """Restore everything `save_checkpoint` wrote (after `recover_checkpoint`); returns the `state.json` dict
    (with `step`, `extra`)."""
    recover_checkpoint(path)
    if not os.path.exists(os.path.join(path, "state.json")):
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no state.json)")
    with open(os.path.join(path, "state.json")) as f:
        meta = json.load(f)
    weights = load_file(os.path.join(path, "model.safetensors"))
    for alias, source in meta["aliases"].items():
        weights[alias] = weights[source]
    model.load_state_dict(weights)
    tensors = load_file(os.path.join(path, "optimizer.safetensors"))
    state: dict[int, dict] = {}
    for key, val in tensors.items():
        if key.startswith("state."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = val
    for key, val in meta["optimizer_scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = val
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    if scheduler is not None and meta["scheduler"] is not None:
        scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    name, pos, has_gauss, gauss = meta["rng_numpy"]
    np.random.set_state((name, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    v, st, g = meta["rng_python"]
    random.setstate((v, tuple(st), g))
    return meta
