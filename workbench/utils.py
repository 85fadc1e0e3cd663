"""Seeding, device and dtype resolution shared by every module."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (CPU and CUDA); return a CPU `torch.Generator` seeded the same."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`"auto"` -> cuda if available, else mps, else cpu; anything else is passed to `torch.device` and must
    exist on this machine (`"cuda:7"` on a CPU box is one ValueError naming it)."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"device {device!r} is not a valid torch device ({e})") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0 or (dev.index or 0) >= n:
            raise ValueError(f"device {device!r} does not exist here: this machine has {n} CUDA device(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r} does not exist here: MPS is not available on this machine")
    return dev


def resolve_dtype(dtype: str | torch.dtype = "auto", device: torch.device | None = None) -> torch.dtype:
    """`"auto"` -> bfloat16 on a CUDA device that supports it, float32 otherwise."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        dev = device or resolve_device("auto")
        if dev.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16, "float64": torch.float64}
    if dtype not in table:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(table)} or 'auto'")
    return table[dtype]


def repo_root() -> str:
    """The workbench checkout (parent of the package) when it has `notebooks/`, else the current directory."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return here if os.path.isdir(os.path.join(here, "notebooks")) else os.getcwd()


def cache_dir() -> str:
    """Where trained tiny checkpoints and generated data live: `$WORKBENCH_CACHE` or `<repo>/.cache/workbench`."""
    path = os.environ.get("WORKBENCH_CACHE") or os.path.join(repo_root(), ".cache", "workbench")
    os.makedirs(path, exist_ok=True)
    return path


def seeded_generator(*key: int) -> torch.Generator:
    """A CPU generator seeded from a tuple (seed, step, ...) — no state to carry across a resume."""
    return torch.Generator().manual_seed(hash(key) % (2**63))


#: set to "1" by `workbench.run` (and by the notebook tests) for the kernels it starts: no browser is attached, so
#: progress bars print text (their final state is what the saved notebook shows) and explorers save their static
#: twins. Plain papermill users: `WORKBENCH_HEADLESS=1 papermill …`.
HEADLESS_ENV = "WORKBENCH_HEADLESS"


def headless() -> bool:
    """Whether this process runs without a live frontend (`$WORKBENCH_HEADLESS` = 1)."""
    return os.environ.get(HEADLESS_ENV, "") == "1"


def tqdm(*args, **kwargs):
    """`tqdm.auto.tqdm` live (a widget bar in JupyterLab); headless, a text bar on stderr updated at most every 5 s
    (`mininterval`) and left in place when it closes, so a saved notebook keeps each bar's final line (count,
    elapsed time, last postfix) and stays small."""
    if headless():
        from tqdm.std import tqdm as text_bar

        kwargs.setdefault("mininterval", 5.0)
        kwargs["leave"] = True  # a saved notebook keeps the bar's final line
        return text_bar(*args, **kwargs)
    from tqdm.auto import tqdm as auto_bar

    return auto_bar(*args, **kwargs)
