"""The layers contract in pyproject.toml holds: no package imports one above it (tasks at the bottom,
experiments at the top), so an upward import fails CI."""

import os
import shutil
import subprocess
import sys

import pytest

from workbench.utils import repo_root


def test_import_linter_layers_contract_is_kept():
    exe = shutil.which("lint-imports") or os.path.join(os.path.dirname(sys.executable), "lint-imports")
    if not os.path.exists(exe):
        pytest.fail("lint-imports is not installed: pip install -e '.[dev]' (import-linter is a dev dependency)")
    out = subprocess.run([exe, "--no-cache"], cwd=repo_root(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "1 kept, 0 broken" in out.stdout, out.stdout[-3000:] + out.stderr[-2000:]


def test_the_contract_names_every_package():
    """A new top-level package must be placed in the layers, or the contract silently ignores it."""
    import tomllib

    with open(os.path.join(repo_root(), "pyproject.toml"), "rb") as f:
        layers = tomllib.load(f)["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {m.strip().split(".")[1] for layer in layers for m in layer.split("|")}
    pkg = os.path.join(repo_root(), "workbench")
    present = {n[:-3] if n.endswith(".py") else n for n in os.listdir(pkg)
               if (n.endswith(".py") and n != "__init__.py") or os.path.isfile(os.path.join(pkg, n, "__init__.py"))}
    assert present <= named, f"packages outside the layers contract: {sorted(present - named)}"
