"""The preference trainer on 2 CPU processes (torchrun, gloo) makes the same update as on one.

Each process pads its own shard, so the forward differs in float rounding (~1e-7); Adam's first steps are close to
lr · sign(g), which turns rounding on near-zero gradient entries into differences up to a fraction of lr. So the
test compares each tensor's update Δ = after − before: ‖Δ₂ − Δ₁‖ ≤ 2 % of ‖Δ₁‖ (a sharding bug — a missed
shard, an unaveraged gradient — moves it by 30 % or more)."""

import os
import subprocess
import sys

from safetensors.torch import load_file

WORKER = os.path.join(os.path.dirname(__file__), "dist_dpo_worker.py")


def test_two_processes_equal_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(29700 + (os.getpid() % 1000))}
    one, two = tmp_path / "one.safetensors", tmp_path / "two.safetensors"
    subprocess.run([sys.executable, WORKER, str(one)], check=True, env=env, timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                    env["MASTER_PORT"], WORKER, str(two)], check=True, env=env, timeout=300, capture_output=True)
    a, b = load_file(str(one)), load_file(str(two))
    assert int(a.pop("world")) == 1 and int(b.pop("world")) == 2
    for k in [k for k in a if k.startswith("after.")]:
        d1, d2 = a[k] - a["before." + k[6:]], b[k] - b["before." + k[6:]]
        assert d1.norm() > 0, k
        assert (d2 - d1).norm() <= 0.02 * d1.norm(), (k, float((d2 - d1).norm() / d1.norm()))
