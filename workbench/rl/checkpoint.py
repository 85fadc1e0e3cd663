"""Training checkpoints as safetensors + plain JSON: model, optimizer, scheduler, RNG, step.

Nothing is pickled. The optimizer's per-parameter tensors go to `optimizer.safetensors`
(`state.<param index>.<name>`), its hyper-parameters and scalars to `state.json`; RNG states
(torch CPU/CUDA as uint8 tensors, numpy, python) are saved too. The folder is written under a
temporary name and renamed into place, so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil

import numpy as np
import torch
from safetensors.torch import load_file, save_file


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
    with open(os.path.join(tmp, "state.json"), "w") as f:
        json.dump(meta, f)
    if os.path.exists(path):
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str, *, model, optimizer, scheduler) -> dict:
    """Restore everything `save_checkpoint` wrote; returns the `state.json` dict (with `step`, `extra`)."""
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
