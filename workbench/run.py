"""Run notebooks with papermill and build `outputs/REPORT.md`.

    python -m workbench.run                                  # every notebook, preset cpu
    python -m workbench.run notebooks/00_quickstart.ipynb --preset smoke
    python -m workbench.run 01_delta_logp -p steps 400 -p model /ckpt/Qwen2.5-Math-1.5B --preset gpu
    python -m workbench.run 02_fipo --sweep seed=0,1,2       # one run per value, outputs/_sweeps/seed=1/<nb>/
    python -m workbench.run 01 09                            # a subset by number (make reproduce NOTEBOOKS=01,09)
    python -m workbench.run --report-only                    # rebuild REPORT.md from results files

Before it starts it prints the plan (`run_plan`: per notebook its zoo models, cached or trained on first use,
and its last run time here); while a notebook runs, its cells' output (progress bars of zoo training and
RL included) streams to the terminal.

Executed notebooks land in `outputs/<notebook>/<notebook>.ipynb`, figures in `figures/<notebook>/`,
numbers in `outputs/<notebook>/results.json`, and a one-row-per-notebook summary in REPORT.md.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys
import time

from workbench.notebook import format_evidence, format_value
from workbench.run_plan import describe, plan
from workbench.utils import HEADLESS_ENV, repo_root


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._+-]+")


def _check_name(name: str, flag: str) -> None:
    """A parameter name must be a Python identifier (it becomes an assignment in the injected cell)."""
    if not _NAME.fullmatch(name):
        raise SystemExit(f"{flag} parameter name {name!r} is not a Python identifier")


def _parse_value(text: str):
    """papermill-style literal parsing: int, float, bool, None, JSON list/dict, else the string."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if text in ("True", "False", "true", "false"):
        return text.lower() == "true"
    if text in ("None", "null"):
        return None
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text


def resolve_notebooks(names: list[str]) -> list[str]:
    """Names like `00_quickstart`, `00_quickstart.ipynb`, a number `01` or paths -> notebook paths (all if empty)."""
    nb_dir = os.path.join(repo_root(), "notebooks")
    if not names:
        return sorted(glob.glob(os.path.join(nb_dir, "[0-9][0-9]_*.ipynb")))
    out = []
    for n in names:
        cands = [n, os.path.join(nb_dir, n), os.path.join(nb_dir, n + ".ipynb")]
        hit = next((c for c in cands if os.path.isfile(c)), None)
        if hit is None and re.fullmatch(r"\d{2}", n):
            hit = next(iter(sorted(glob.glob(os.path.join(nb_dir, f"{n}_*.ipynb")))), None)
        if hit is None:
            raise SystemExit(f"notebook {n!r} not found (looked in {nb_dir})")
        out.append(hit)
    return out


def run_notebook(path: str, parameters: dict, outputs_root: str, tag: str = "", progress: bool = True,
                 stream: bool = False) -> dict:
    """Execute one notebook with papermill; `stream` copies its cells' stdout / stderr to ours as they run.
    Returns `{"notebook", "ok", "seconds", "output", "error"}`."""
    import papermill as pm

    name = os.path.splitext(os.path.basename(path))[0]
    # a sweep member writes its executed notebook and results.json under outputs/_sweeps/<tag>/<name>/
    results_root = os.path.join(outputs_root, "_sweeps", tag) if tag else outputs_root
    out_dir = os.path.join(results_root, name)
    os.makedirs(out_dir, exist_ok=True)
    out_nb = os.path.join(out_dir, f"{name}.ipynb")
    env_before = os.environ.get("WORKBENCH_OUTPUTS")
    if tag:
        os.environ["WORKBENCH_OUTPUTS"] = results_root
        os.environ["WORKBENCH_FIGURES_TAG"] = "sweep-" + tag  # its figures: figures/_sweep-<tag>/<name>/
    os.environ[HEADLESS_ENV] = "1"  # the kernel inherits it: text progress bars, static explorer twins (no browser)
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # and transformers' weight-loading widget bar stays out
    t0 = time.time()
    try:
        pm.execute_notebook(path, out_nb, parameters=parameters, progress_bar=progress and not stream,
                            cwd=os.path.dirname(os.path.abspath(path)), kernel_name="python3", log_output=stream,
                            stdout_file=sys.stdout if stream else None, stderr_file=sys.stderr if stream else None)
        ok, err = True, ""
    except Exception as e:  # papermill re-raises the cell's exception; keep its headline
        ok, err = False, str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    finally:
        if tag:
            os.environ.pop("WORKBENCH_FIGURES_TAG", None)
            if env_before is None:
                os.environ.pop("WORKBENCH_OUTPUTS", None)
            else:
                os.environ["WORKBENCH_OUTPUTS"] = env_before
    html = export_html(out_nb) if os.path.exists(out_nb) else ""  # a failed run's page shows the failing cell
    return {"notebook": name, "ok": ok, "seconds": round(time.time() - t0, 1), "output": out_nb, "html": html,
            "error": err}


#: nbconvert's template URLs that point at the web; emptied so that an exported page loads nothing from a CDN
_WEB_ASSETS = ("jquery_url", "require_js_url", "mathjax_url", "widget_renderer_url", "mermaid_js_url")


def export_html(notebook_path: str) -> str:
    """Write `<notebook>.html` beside an executed notebook: nbconvert's lab template with images embedded and every
    script URL of the template emptied, so the page opens offline and pulls nothing from the web (math then shows
    as its TeX source). Returns the HTML path."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", embed_images=True)
    for trait in _WEB_ASSETS:
        if exporter.has_trait(trait):
            setattr(exporter, trait, "")
    body, _ = exporter.from_notebook_node(nbformat.read(notebook_path, as_version=4))
    out = os.path.splitext(notebook_path)[0] + ".html"
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(body)
    os.replace(tmp, out)
    return out


def build_report(outputs_root: str, figures_root: str, runs: list[dict] | None = None) -> str:
    """Write `REPORT.md`: one row per notebook with its claims, measured values, verdict and runtime."""
    lines = ["# Workbench report", "",
             "Generated by `python -m workbench.run` from `outputs/<notebook>/results.json`.", "",
             "A **verdict** (holds / refuted / inconclusive) is decided from paired comparisons: the effect in the",
             "paper's direction, its 95 % CI, n pairs, the minimum detectable effect (MDE) and the claim's smallest",
             "effect of interest (SESOI); an inconclusive claim lists the pairs that would bring the MDE to the SESOI.",
             "Claims without a verdict say only whether the paper's number was met (`holds`).",
             "Each notebook name links its executed notebook as an offline HTML page.", "",
             "| notebook | paper | claim | paper's number | measured | verdict | evidence | preset | runtime | figure |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    failed = {r["notebook"]: r for r in runs or [] if not r["ok"]}
    for res_path in sorted(glob.glob(os.path.join(outputs_root, "*", "results.json"))):
        try:
            with open(res_path) as f:
                res = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            print(f"[workbench] skipping {res_path} in the report: not readable JSON ({e})", flush=True)
            continue
        nb = res.get("notebook", os.path.basename(os.path.dirname(res_path)))
        if nb in failed:
            continue
        fig = res.get("key_figure") or ""
        tag = res.get("figure_tag")
        fig_dir = os.path.join(figures_root, f"_{tag}", nb) if tag else os.path.join(figures_root, nb)
        fig_rel = os.path.relpath(os.path.join(fig_dir, fig + ".png"), outputs_root) if fig else ""
        fig_cell = f"[{fig}]({fig_rel})" if fig else ""
        page = os.path.join(os.path.dirname(res_path), f"{nb}.html")
        nb_cell = f"[{nb}]({os.path.relpath(page, outputs_root)})" if os.path.exists(page) else nb
        claims = res.get("claims") or [{"claim": "(no claim recorded)", "paper": "", "measured": "", "holds": None}]
        for c in claims:
            holds = {True: "holds", False: "**does not hold**", None: "–"}[c.get("holds")]
            verdict = f"**{c['verdict']}**" if c.get("verdict") else f"{holds} (no verdict)"
            lines.append(f"| {nb_cell} | {res.get('paper', '')} | {c['claim']} | {format_value(c.get('paper'))} | "
                         f"{format_value(c.get('measured'))} | {verdict} | {format_evidence(c.get('evidence'))} | {res.get('preset')} | "
                         f"{res.get('runtime_s')} s | {fig_cell} |")
    for nb, r in failed.items():
        lines.append(f"| {nb} | | **run failed**: {r['error']} | | | | | | {r['seconds']} s | |")
    path = os.path.join(outputs_root, "REPORT.md")
    os.makedirs(outputs_root, exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workbench.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", help="notebook names or paths (default: all in notebooks/)")
    ap.add_argument("--preset", default="cpu", help="smoke | cpu | gpu (default cpu)")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    ap.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2", help="one run per value")
    ap.add_argument("--outputs", default=os.path.join(repo_root(), "outputs"))
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--no-progress", action="store_true", help="no cell counter and no streamed cell output")
    ap.add_argument("--quiet-cells", action="store_true", help="papermill's cell counter instead of the cells' output")
    args = ap.parse_args(argv)
    outputs_root = os.path.abspath(args.outputs)
    figures_root = os.environ.get("WORKBENCH_FIGURES") or os.path.join(repo_root(), "figures")
    os.environ["WORKBENCH_OUTPUTS"] = outputs_root
    runs: list[dict] = []
    if not args.report_only:
        for k, _ in args.parameter:
            _check_name(k, "-p")
        params = {"preset": args.preset, **{k: _parse_value(v) for k, v in args.parameter}}
        sweeps = [{}]
        for spec in args.sweep:
            if "=" not in spec:
                raise SystemExit(f"--sweep {spec!r} must look like NAME=V1,V2")
            key, vals = spec.split("=", 1)
            _check_name(key, "--sweep")
            for v in vals.split(","):
                if not _SAFE_VALUE.fullmatch(v):
                    raise SystemExit(f"--sweep value {v!r} of {key!r} may hold only letters, digits and . _ + - "
                                     "(it names the run's folder)")
            sweeps = [{**s, key: _parse_value(v)} for s in sweeps for v in vals.split(",")]
        notebooks = resolve_notebooks(args.notebooks)
        print(describe(plan(notebooks, args.preset, outputs_root)), flush=True)
        for nb in notebooks:
            for s in sweeps:
                tag = ",".join(f"{k}={v}" for k, v in s.items())
                print(f"[workbench] running {os.path.basename(nb)} preset={args.preset} {tag}", flush=True)
                r = run_notebook(nb, {**params, **s}, outputs_root, tag=tag, progress=not args.no_progress,
                                 stream=not (args.no_progress or args.quiet_cells))
                print(f"[workbench]   {'ok' if r['ok'] else 'FAILED: ' + r['error']} in {r['seconds']} s -> {r['output']}",
                      flush=True)
                runs.append(r)
    report = build_report(outputs_root, figures_root, runs)
    print(f"[workbench] report: {report}")
    return 0 if all(r["ok"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
