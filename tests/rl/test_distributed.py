"""A 2-process CPU run (torchrun, gloo) gives the same update as one process on the same global batch."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

WORKER = os.path.join(os.path.dirname(__file__), "dist_update_worker.py")


def launch_two(env: dict) -> list[str]:
    """The command that starts 2 CPU processes (gloo). `torchrun`, not `accelerate launch --cpu --num_processes 2`:
    accelerate 1.x starts a single process for that (its multi-process launcher is for GPUs), which would
    make the comparison one process against one."""
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", env["MASTER_PORT"]]


def free_port() -> str:
    """A port the OS says is free now (a pid-derived port can collide with another run's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def run_two(env: dict, script: list[str]) -> None:
    """Run `script` on 2 processes; on failure, the workers' own last stderr lines are the message."""
    done = subprocess.run(launch_two(env) + script, env=env, timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, f"torchrun exited {done.returncode}:\n" + "\n".join(done.stderr.splitlines()[-40:])


@pytest.mark.parametrize("agg", ["token-mean", pytest.param("seq-mean-token-mean", marks=pytest.mark.slow),
                                 pytest.param("token-mean pack", marks=pytest.mark.slow)])
def test_two_processes_equal_one(tmp_path, agg):
    """`agg` names the aggregation, then optionally `pack` (the packed update, DDP-safe)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": free_port()}
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    subprocess.run([sys.executable, WORKER, str(one), *agg.split()], check=True, env=env, timeout=300)
    run_two(env, [WORKER, str(two), *agg.split()])
    a, b = load_file(str(one)), load_file(str(two))
    assert int(a.pop("world")) == 1 and int(b.pop("world")) == 2, "the second run must really have two processes"
    assert a.keys() == b.keys() and len(a) > 0
    after = [k for k in a if k.startswith("after.")]
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5, msg=k)
    moved = max((a[k] - a["before." + k[6:]]).abs().max().item() for k in after)
    assert moved > 1e-4, "the update must change the weights for the comparison to mean anything"


def test_two_processes_share_one_prompt_history(tmp_path):
    """With GRESO selective rollouts each process draws its own prompts, but every process applies all
    processes' group outcomes: both end with the same history, which counts every group sampled."""
    worker = os.path.join(os.path.dirname(__file__), "dist_selective_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": free_port()}
    run_two(env, [worker, str(tmp_path / "h")])
    a, b = (json.load(open(tmp_path / f"h.{r}.json")) for r in (0, 1))
    assert a["world"] == b["world"] == 2
    assert a["streak"] == b["streak"] and a["groups_sampled"] == b["groups_sampled"] == 3 * 4
    assert any(v > 0 for v in a["streak"].values())
