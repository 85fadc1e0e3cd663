import json
from typing import Optional

import pytest

from workbench import notebook as wnb
from workbench.run import _parse_value, build_report


def _ns(**values):
    ann = {"preset": str, "steps": Optional[int], "lr": float, "name": str, "flag": bool}
    base = {"preset": "cpu", "steps": None, "lr": 1e-3, "name": "x", "flag": False}
    return {"__annotations__": ann, **base, **values}


def test_valid_parameters_pass_and_ints_count_as_floats():
    assert wnb.check_parameters(_ns(lr=1, steps=5))["steps"] == 5


@pytest.mark.parametrize("values,needle", [
    ({"preset": "nonsense"}, "parameter 'preset' must be one of smoke, cpu, gpu; got 'nonsense'"),
    ({"steps": "many"}, "parameter 'steps' must be of type"),
    ({"steps": 2.5}, "parameter 'steps'"),
    ({"lr": "fast"}, "parameter 'lr' must be of type float"),
    ({"flag": 1}, "parameter 'flag' must be of type bool"),
])
def test_bad_parameters_name_the_parameter(values, needle):
    with pytest.raises(wnb.ParameterError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        wnb.check_parameters(_ns(**values))


def test_ranges_and_choices():
    with pytest.raises(wnb.ParameterError, match="'steps' must be in"):
        wnb.check_parameters(_ns(steps=-1), ranges={"steps": (0, None)})
    with pytest.raises(wnb.ParameterError, match="'name' must be one of a, b"):
        wnb.check_parameters(_ns(), choices={"name": ["a", "b"]})
    assert wnb.from_preset(None, "smoke", {"smoke": 1, "cpu": 2, "gpu": 3}) == 1
    assert wnb.from_preset(7, "smoke", {"smoke": 1, "cpu": 2, "gpu": 3}) == 7


def test_results_file_format_and_report(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(tmp_path))
    r = wnb.Results("99_demo", "smoke", 0, paper="Demo (arXiv 0000.00000)", key_figure="curve")
    r.metric("acc", 0.5)
    import torch

    r.metric("tensor", torch.tensor(0.25))
    r.claim("c1", "ours beats theirs", paper=0.1, measured=0.2, holds=0.2 > 0.1)
    r.claim("c1", "ours beats theirs", paper=0.1, measured=0.3, holds=True)  # re-recording replaces
    data = json.load(open(r.save()))
    assert set(data) >= {"notebook", "preset", "seed", "runtime_s", "metrics", "claims"}
    assert data["metrics"] == {"acc": 0.5, "tensor": 0.25}
    assert data["claims"] == [{"id": "c1", "claim": "ours beats theirs", "paper": 0.1, "measured": 0.3, "holds": True}]
    report = open(build_report(str(tmp_path), str(tmp_path / "figs"))).read()
    assert "| 99_demo | Demo (arXiv 0000.00000) | ours beats theirs | 0.1 | 0.3 | holds (no verdict) |  | smoke |" in report
    from workbench.evaluation.verdicts import decide

    r.claim("c2", "underpowered", paper="+2", measured=0.0, verdict=decide([0.04, -0.03, 0.05, -0.02], sesoi=0.02))
    r.save()
    report = open(build_report(str(tmp_path), str(tmp_path / "figs"))).read()
    assert "| **inconclusive** | effect 0.01 [" in report and "pairs would reach the SESOI" in report


@pytest.mark.parametrize("text,value", [("3", 3), ("0.5", 0.5), ("True", True), ("None", None), ("[1, 2]", [1, 2]),
                                        ("tiny-arith", "tiny-arith"), ("/a/b", "/a/b")])
def test_cli_value_parsing(text, value):
    assert _parse_value(text) == value


def test_recording_returns_nothing_so_cells_end_without_a_repr(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(tmp_path))
    from workbench.notebook import Results

    r = Results("99_x", "smoke", 0)
    assert r.metric("a", [1, 2]) is None
    assert r.claim("c", "x", paper=1, measured=1, holds=True) is None


def test_figures_of_a_smoke_run_or_a_sweep_go_to_their_own_place(tmp_path, monkeypatch):
    """Issue 25 item 4: only the default (cpu) run writes figures/<notebook>/, which REPORT.md links."""
    import os

    import workbench.notebook as wnb
    from workbench.viz.style import figures_dir

    monkeypatch.setenv("WORKBENCH_FIGURES", str(tmp_path))
    monkeypatch.delenv("WORKBENCH_FIGURES_TAG", raising=False)
    wnb.Results("07_x", "smoke", 0)
    assert figures_dir("07_x") == os.path.join(str(tmp_path), "_smoke", "07_x")
    wnb.Results("07_x", "cpu", 0)
    assert figures_dir("07_x") == os.path.join(str(tmp_path), "07_x")
    monkeypatch.setenv("WORKBENCH_FIGURES_TAG", "sweep-seed=1")
    res = wnb.Results("07_x", "cpu", 0)
    assert figures_dir("07_x") == os.path.join(str(tmp_path), "_sweep-seed=1", "07_x")
    assert res.to_dict()["figure_tag"] == "sweep-seed=1"


def test_a_list_parameter_written_as_text_is_parsed():
    """Issue 25 item 5: plain papermill passes `-p rhos "[0.0, 0.9]"` as a string."""
    import typing

    import pytest

    from workbench.notebook import ParameterError, check_parameters

    ns = {"__annotations__": {"preset": str, "rhos": typing.Optional[list[float]]}, "preset": "smoke", "rhos": "[0.0, 0.9]"}
    assert check_parameters(ns)["rhos"] == [0.0, 0.9] and ns["rhos"] == [0.0, 0.9]
    ns["rhos"] = "[0.0, 'x']"
    with pytest.raises(ParameterError, match=r"'rhos' must be of type list\[float\] or None"):
        check_parameters(ns)
    ns = {"__annotations__": {"preset": str, "name": typing.Optional[str]}, "preset": "smoke", "name": "[1]"}
    assert check_parameters(ns)["name"] == "[1]"  # a str parameter keeps its text


def test_every_notebook_names_the_one_kernel():
    """Issue 25 item 6: one kernelspec for all notebooks, the one `make lab` installs."""
    import glob
    import json
    import os

    from workbench.utils import repo_root

    specs = {json.dumps(json.load(open(f))["metadata"]["kernelspec"], sort_keys=True)
             for f in glob.glob(os.path.join(repo_root(), "notebooks", "*.ipynb"))}
    assert specs == {json.dumps({"display_name": "Python 3 (workbench)", "language": "python", "name": "python3"},
                                sort_keys=True)}
    make = open(os.path.join(repo_root(), "Makefile")).read()
    assert '--name python3 --display-name "Python 3 (workbench)"' in make and "--allow-root" in make


def test_html_export_is_offline_and_linked_from_the_report(tmp_path):
    """An executed notebook's HTML page embeds its images and loads no script or style from the web; REPORT.md
    links it (issue 25 item 16)."""
    import base64
    import json
    import re

    import nbformat

    from workbench.run import build_report, export_html

    png = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                                         "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")).decode()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t\n$x^2$"),
                nbformat.v4.new_code_cell("1", outputs=[nbformat.v4.new_output("display_data", data={"image/png": png})])]
    out_dir = tmp_path / "outputs" / "99_x"
    out_dir.mkdir(parents=True)
    nbformat.write(nb, str(out_dir / "99_x.ipynb"))
    page = open(export_html(str(out_dir / "99_x.ipynb")), encoding="utf-8").read()
    assert "data:image/png;base64," in page
    remote = re.findall(r"""<(?:script|link|img)[^>]+(?:src|href)=["']?(?:https?:)?//[^"'> ]+""", page)
    assert remote == [], remote
    (out_dir / "results.json").write_text(json.dumps({"notebook": "99_x", "preset": "smoke", "claims": []}))
    report = open(build_report(str(tmp_path / "outputs"), str(tmp_path / "figures"))).read()
    assert "[99_x](99_x/99_x.html)" in report


def test_results_table_shows_verdicts_and_no_raw_dicts(tmp_path, monkeypatch):
    from workbench.evaluation.verdicts import decide_paired
    from workbench.notebook import Results

    monkeypatch.setenv("WORKBENCH_OUTPUTS", str(tmp_path))
    r = Results("99_test", "smoke", 0)
    v = decide_paired([0.1, 0.0, 0.2, 0.1], [0.0, 0.0, 0.0, 0.0], sesoi=0.02)
    r.claim("c", "treatment beats control", paper="it does", measured={"gain": {"mean": 0.1, "ci": [0.0, float("inf")]}},
            verdict=v)
    table = r._repr_markdown_()
    assert "| verdict |" in table and f"**{v.verdict}**" in table and "{" not in table and "inf" not in table
    assert "gain: (mean: 0.1, ci: [0, —])" in table
