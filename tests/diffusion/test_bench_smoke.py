"""`benchmarks/bench_diffusion_cache.py --quick` runs end to end and writes its rows and targets."""

import json
import os
import sys

from workbench.utils import repo_root

sys.path.insert(0, os.path.join(repo_root(), "benchmarks"))


def test_bench_diffusion_cache_quick(tmp_path, monkeypatch):
    import bench_diffusion_cache as bench

    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "diffusion_cache.json"
    assert bench.main(["--quick", "--repeats", "1", "--timed", "2", "--out", str(out)]) == 0
    rec = json.load(open(out))
    caches = {r["cache"] for r in rec["rows"]}
    assert {"none", "deepcache", "pab", "block", "prompt", "hgc"} <= caches
    none = rec["rows"][0]
    assert none["cache"] == "none" and none["mac_cut_pct"] == 0 and none["speedup"] == 1
    assert all(r["macs_per_image"] < none["macs_per_image"] for r in rec["rows"] if r["cache"] in ("deepcache", "hgc"))
    assert "hgc_setting" in rec["targets"]
