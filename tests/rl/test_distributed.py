"""A 2-process CPU run (accelerate launch, gloo) gives the same update as one process on the same global batch."""

import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

WORKER = os.path.join(os.path.dirname(__file__), "dist_update_worker.py")


@pytest.mark.parametrize("agg", ["token-mean", pytest.param("seq-mean-token-mean", marks=pytest.mark.slow)])
def test_two_processes_equal_one(tmp_path, agg):
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    if accelerate is None:
        pytest.skip("accelerate CLI not installed in this environment")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(29500 + (os.getpid() % 1000))}
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    subprocess.run([sys.executable, WORKER, str(one), agg], check=True, env=env, timeout=300)
    subprocess.run([accelerate, "launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
                    "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", env["MASTER_PORT"],
                    WORKER, str(two), agg], check=True, env=env, timeout=300, capture_output=True)
    a, b = load_file(str(one)), load_file(str(two))
    assert a.keys() == b.keys() and len(a) > 0
    after = [k for k in a if k.startswith("after.")]
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5, msg=k)
    moved = max((a[k] - a["before." + k[6:]]).abs().max().item() for k in after)
    assert moved > 1e-4, "the update must change the weights for the comparison to mean anything"
