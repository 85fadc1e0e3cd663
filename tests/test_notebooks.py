"""Every notebook in notebooks/ runs at preset=smoke, writes a well-formed results.json, and — for the
notebooks that stood before spine v2 — gives the golden numbers of `tests/golden/notebooks.json`.

Parametrised over the folder, so a new notebook is covered the day it is committed."""

import glob
import json
import os
import sys
import warnings

import pytest

from workbench.utils import repo_root

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden"))
from fingerprints import compare, machine, same_machine, strip_times  # noqa: E402

GOLDEN = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "notebooks.json")))

NOTEBOOKS = sorted(glob.glob(os.path.join(repo_root(), "notebooks", "[0-9][0-9]_*.ipynb")))


@pytest.fixture
def isolated_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HEADLESS", "1")  # as workbench.run runs them: papermill's kernel inherits it
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setenv("WORKBENCH_FIGURES", str(tmp_path / "figures"))
    return tmp_path


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs_at_smoke(path, isolated_outputs):
    import papermill as pm

    name = os.path.splitext(os.path.basename(path))[0]
    out = isolated_outputs / f"{name}.ipynb"
    pm.execute_notebook(path, str(out), parameters={"preset": "smoke"}, progress_bar=False,
                        cwd=os.path.dirname(path), kernel_name="python3")
    results = json.load(open(isolated_outputs / "outputs" / name / "results.json"))
    assert results["notebook"] == name and results["preset"] == "smoke"
    assert {"seed", "runtime_s", "metrics", "claims"} <= set(results)
    assert results["claims"], "a notebook records at least one claim"
    for c in results["claims"]:
        assert {"id", "claim", "paper", "measured", "holds"} <= set(c) and isinstance(c["holds"], bool)
    executed = json.load(open(out))
    stray = [("".join(c["source"]).splitlines() or [""])[-1] for c in executed["cells"] if c["cell_type"] == "code"
             for o in c.get("outputs", []) if o.get("output_type") == "execute_result" and set(o.get("data", {})) <= {"text/plain"}]
    assert not stray, f"{name}: cells end in a bare repr: {stray}"
    widgets = [o for c in executed["cells"] for o in c.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not widgets, f"{name}: a headless run saved {len(widgets)} widget(s) that no saved notebook can show"
    stderr = ["".join("".join(o.get("text", "")) for o in c.get("outputs", []) if o.get("name") == "stderr")
              for c in executed["cells"]]  # a frontend joins a cell's consecutive stream outputs, then applies \r
    frozen = [line.split("\r")[-1] for text in stderr for line in text.split("\n")
              if "%|" in line and "100%|" not in line.split("\r")[-1]]
    assert not frozen, f"{name}: progress bars saved before their end: {frozen[:3]}"
    figs = glob.glob(str(isolated_outputs / "figures" / "_smoke" / name / "*.png"))  # a smoke run has its own place
    assert not os.path.exists(isolated_outputs / "figures" / name), "a smoke run must not write the cpu figures"
    assert figs and all(os.path.exists(f[:-4] + ".pdf") for f in figs)
    if name in GOLDEN["notebooks"]:
        exact = same_machine(GOLDEN["machine"])
        if not exact:
            warnings.warn(f"golden smoke numbers come from {GOLDEN['machine']}, this is {machine()}: comparing structure only")
        golden = strip_times(GOLDEN["notebooks"][name])
        actual = {"metrics": strip_times(results["metrics"]), "claims": strip_times(results["claims"])}
        diffs = compare({"metrics": actual["metrics"], "claims": [{k: c[k] for k in ("id", "claim", "paper", "measured", "holds")}
                                                                   for c in actual["claims"]]},
                        {"metrics": golden["metrics"], "claims": [{k: c[k] for k in ("id", "claim", "paper", "measured", "holds")}
                                                                   for c in golden["claims"]]}, exact=exact)
        assert not diffs, f"{name} smoke numbers differ from the golden run:\n" + "\n".join(diffs[:15])


@pytest.mark.notebook
@pytest.mark.parametrize("params,needle", [
    ({"preset": "nonsense"}, "parameter 'preset' must be one of smoke, cpu, gpu; got 'nonsense'"),
    ({"preset": "smoke", "seed": "zero"}, "parameter 'seed' must be of type int, got 'zero'"),
    ({"preset": "smoke", "stepz": 3}, "unknown parameter 'stepz'; this notebook's parameters are preset, "),
    ({"preset": "smoke", "seed": 2**64}, "parameter 'seed' must fit in 64 bits"),
])
def test_bad_parameter_fails_with_one_sentence(params, needle, isolated_outputs):
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    path = os.path.join(repo_root(), "notebooks", "00_quickstart.ipynb")
    with pytest.raises(PapermillExecutionError) as err:
        pm.execute_notebook(path, str(isolated_outputs / "bad.ipynb"), parameters=params, progress_bar=False,
                            cwd=os.path.dirname(path), kernel_name="python3")
    assert err.value.ename == "ParameterError" and needle in err.value.evalue


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_papermill_sees_every_parameter(path):
    """`papermill --help-notebook` (and `-p`) only know the parameters papermill can parse: a comment it
    trips on (an `=` inside it) silently drops that parameter from the help."""
    import ast

    import papermill as pm

    nb = json.load(open(path))
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    names = [n.target.id if isinstance(n, ast.AnnAssign) else n.targets[0].id for n in tree.body
             if isinstance(n, (ast.AnnAssign, ast.Assign))]
    assert sorted(pm.inspect_notebook(path)) == sorted(names)
