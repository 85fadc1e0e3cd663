"""The tiny-model zoo: `load_model(name_or_path)` -> (model, tokenizer).

A *name* (`tiny-arith`, ...) names a recipe: a function that builds a tiny model from a transformers
config and trains it with the project's own code on synthetic data. The first `load_model(name)`
runs the recipe and saves the result (safetensors + config + tokenizer) under
`$WORKBENCH_CACHE/zoo/<name>-v<version>/`; later calls load it and train nothing. Saving is atomic
(a temporary folder renamed into place) and guarded by a file lock, so parallel test workers never
see a half-written checkpoint.

A *path* to a local folder loads a real Hugging Face checkpoint through the same code: a causal LM,
or an image-text-to-text model (e.g. Qwen2.5-VL) when its config has a `vision_config`.

Adding a model = one decorated function in `workbench/recipes/` (or in a module of your own, listed in
`$WORKBENCH_ZOO_PLUGINS`, comma-separated)::

    @register_recipe("tiny-haystack", version="1")
    def tiny_haystack(seed: int) -> tuple[model, tokenizer, dict]:
        ...build, train, return (model, tokenizer, info)

The model layer imports no recipe: recipes register themselves when their package is imported, and
`load_model` imports the plugin packages (`ZOO_PLUGINS`) by name the first time it is asked for a name
it does not know — discovery, as entry points do, not a dependency of this module.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from typing import Callable

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from workbench.registry import Registry
from workbench.utils import cache_dir, resolve_device, resolve_dtype


@dataclass(frozen=True)
class Recipe:
    """`build_and_train(seed) -> (model, tokenizer, info)`; bump `version` when the recipe changes. `loader(path,
    device, dtype) -> (model, tokenizer)` reads back a model that is not a transformers checkpoint (e.g. a diffusion
    model with its own `save_pretrained`); None = the transformers loader."""

    name: str
    version: str
    build_and_train: Callable
    loader: Callable | None = None


RECIPES: Registry[Recipe] = Registry("zoo model")


def register_recipe(name: str, version: str = "1", loader: Callable | None = None):
    """Register a recipe under `name` (see module docstring; `loader` as in `Recipe`)."""

    def deco(fn):
        RECIPES.register(name)(Recipe(name, version, fn, loader))
        return fn

    return deco


def checkpoint_dir(name: str, seed: int = 0) -> str:
    """Cache folder of a zoo model (it may not exist yet)."""
    if name not in RECIPES:
        discover_recipes()
    recipe = RECIPES.get(name)
    suffix = f"-seed{seed}" if seed else ""
    return os.path.join(cache_dir(), "zoo", f"{name}-v{recipe.version}{suffix}")


@contextlib.contextmanager
def _file_lock(path: str):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_environment() -> dict:
    """What the trained numbers depend on beyond the seed: torch version, the CPU kernels' ISA level
    (`torch.backends.cpu.get_cpu_capability()`), thread count, deterministic-algorithms mode and the device.
    Float reductions round differently across ISAs and thread counts, so the same seed on another machine can
    train a slightly different model; this records which machine a cached model came from."""
    cap = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", lambda: "unknown")()
    return {"torch": torch.__version__, "cpu_capability": cap, "threads": torch.get_num_threads(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def save_pretrained_atomic(model, tokenizer, path: str, info: dict | None = None) -> str:
    """Save model (safetensors), tokenizer and `info.json` into `path` atomically: written as `<path>.tmp-<pid>`,
    the old folder renamed aside, the new one renamed in, the old one removed — so `path` is never deleted
    before its replacement is complete."""
    tmp, old = f"{path}.tmp-{os.getpid()}", f"{path}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    with open(os.path.join(tmp, "info.json"), "w") as f:
        json.dump(info or {}, f, indent=1)
    if os.path.exists(path):
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def load_model(
    name_or_path: str,
    *,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    seed: int = 0,
    train_if_missing: bool = True,
):
    """Load a zoo model by name (training and caching it on first use) or a local HF checkpoint.

    Args:
        name_or_path: a recipe name (see `RECIPES.names()`) or a folder with `config.json`.
        device: `"auto"` (cuda > mps > cpu) or a torch device.
        dtype: `"auto"` (bf16 on a supporting GPU, else float32) or a dtype name.
        seed: the recipe's training seed (seed 0 is the default base).
        train_if_missing: if False, a missing cache entry raises instead of training.

    Returns:
        (model in eval mode on `device`, tokenizer or processor). `model.workbench_info` holds the
        recipe's info (e.g. held-out accuracy after SFT) for zoo models.
    """
    if name_or_path not in RECIPES and not os.path.isdir(name_or_path):
        discover_recipes()
    dev = resolve_device(device)
    if name_or_path in RECIPES:
        path = checkpoint_dir(name_or_path, seed)
        if not os.path.exists(os.path.join(path, "config.json")):
            if not train_if_missing:
                raise FileNotFoundError(f"zoo model {name_or_path!r} is not cached at {path} and train_if_missing=False")
            with _file_lock(path + ".lock"):
                if not os.path.exists(os.path.join(path, "config.json")):  # another process may have built it
                    t0 = time.time()
                    model, tok, info = RECIPES.get(name_or_path).build_and_train(seed)
                    info = {**info, "recipe": name_or_path, "seed": seed, "build_seconds": round(time.time() - t0, 1),
                            "built_on": build_environment()}
                    save_pretrained_atomic(model, tok, path, info)
        loader = RECIPES.get(name_or_path).loader
        model, tok = loader(path, dev, dtype) if loader else _load_local(path, dev, dtype)
        with open(os.path.join(path, "info.json")) as f:
            model.workbench_info = json.load(f)
        return model, tok
    if os.path.isdir(name_or_path):
        return _load_local(name_or_path, dev, dtype)
    raise ValueError(
        f"model {name_or_path!r} is neither a zoo name ({', '.join(RECIPES.names())}) nor an existing local folder"
    )


def describe_info(model) -> str:
    """`model.workbench_info` (what the zoo recipe recorded: steps, held-out accuracy, build environment) as one
    readable line without the training history; a local checkpoint has none and says so."""
    from workbench.notebook import format_value

    info = {k: v for k, v in (getattr(model, "workbench_info", None) or {}).items() if k != "history"}
    return format_value(info) if info else "none (not a zoo model)"


def _load_local(path: str, device: torch.device, dtype):
    if not os.path.exists(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"{path} has no config.json: not a Hugging Face checkpoint folder")
    config = AutoConfig.from_pretrained(path)
    tokenizer_files = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
    if not any(os.path.exists(os.path.join(path, f)) for f in tokenizer_files):
        raise FileNotFoundError(f"{path} has a model but no tokenizer files ({', '.join(tokenizer_files)}): save the "
                                "tokenizer (or processor) with the checkpoint")
    torch_dtype = resolve_dtype(dtype, device)
    if getattr(config, "vision_config", None) is not None:
        from transformers import AutoModelForImageTextToText

        from workbench.models.vlm import load_vl_processor

        model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch_dtype)
        tok = load_vl_processor(path)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        tok = AutoTokenizer.from_pretrained(path)
    text = getattr(tok, "tokenizer", tok)  # a processor's tokenizer, or the tokenizer itself
    if getattr(text, "pad_token", None) is None and getattr(text, "eos_token", None) is not None:
        text.pad_token = text.eos_token
    return model.to(device).eval(), tok


#: packages whose import registers recipes (workbench's own, then `$WORKBENCH_ZOO_PLUGINS`)
ZOO_PLUGINS = ("workbench.recipes",)


def discover_recipes() -> None:
    """Import every plugin package so its `@register_recipe` functions run (idempotent)."""
    extra = [m.strip() for m in os.environ.get("WORKBENCH_ZOO_PLUGINS", "").split(",") if m.strip()]
    for module in (*ZOO_PLUGINS, *extra):
        importlib.import_module(module)
