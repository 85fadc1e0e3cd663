"""Notebook conventions: parameter validation, presets, and the machine-readable results file.

Every notebook's second cell (tagged `parameters`) holds plain typed assignments::

    preset: str = "cpu"          # smoke | cpu | gpu
    model: str = "tiny-arith"    # zoo name or local checkpoint path
    steps: int | None = None     # RL steps (None: from the preset)

and the next cell calls `check_parameters(globals(), choices={...})`, which reads the annotations
of that cell (IPython keeps them in the notebook's `__annotations__`), checks each value papermill
injected against its declared type, and stops with one sentence naming a bad value.
`outputs/<notebook>/results.json` is written by `Results` in the format below (see `Results`).
"""

from __future__ import annotations

import json
import math
import os
import time
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from workbench.utils import repo_root

PRESETS = ("smoke", "cpu", "gpu")


class ParameterError(ValueError):
    """A notebook parameter has a bad value; the message is one sentence naming it."""


def _type_ok(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None) or tp is None:
        return value is None
    if origin in (list, tuple):
        if not isinstance(value, origin):
            return False
        args = typing.get_args(tp)
        return not args or all(_type_ok(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _wants_container(tp: Any) -> bool:
    """Whether `tp` admits a list, tuple or dict but not a str (so a str value may be a container written out)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        return str not in args and any(_wants_container(a) for a in args)
    return origin in (list, tuple, dict) or tp in (list, tuple, dict)


def _from_text(value: Any, tp: Any) -> Any:
    """A container parameter given as text (plain papermill's `-p rhos "[0.0, 0.9]"`) parsed as a Python literal;
    anything else unchanged."""
    if isinstance(value, str) and _wants_container(tp):
        import ast

        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            return value
        if isinstance(parsed, (list, tuple, dict)):
            return parsed
    return value


def _type_name(tp: Any) -> str:
    """`int`, `int or None`, `list[float] or None`: what a value must be, in words."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or None" if type(None) in args else "")
    if origin is not None:
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


_KERNEL_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}
_SIMPLE = (bool, int, float, str, list, tuple, dict, type(None))


def check_parameters(namespace: dict, choices: dict[str, typing.Iterable] | None = None,
                     ranges: dict[str, tuple[float | None, float | None]] | None = None) -> dict:
    """Validate the parameters cell; return `{name: value}` for every annotated parameter.

    On the cell's first run (no `P` in the namespace yet) any other plain value in the namespace came from
    papermill's injected cell, i.e. a parameter the notebook does not have (`-p stepz 3`): that stops the
    run. Floats must be finite and integers fit in 64 bits.

    Args:
        namespace: the notebook's `globals()`.
        choices: allowed values per parameter (`preset` always must be one of smoke, cpu, gpu).
        ranges: inclusive (low, high) bounds per numeric parameter; None = unbounded.

    Raises:
        ParameterError: one sentence naming the parameter, its value and what was expected.
    """
    __tracebackhide__ = True  # IPython hides this frame: the reader sees the sentence, not our internals
    annotations = namespace.get("__annotations__", {})
    if not annotations:
        raise ParameterError("no typed parameters found: the parameters cell must use `name: type = value` lines")
    choices = {"preset": PRESETS, **(choices or {})}
    if "P" not in namespace:  # the first run of the cell: any other plain value was injected as a parameter
        unknown = sorted(n for n, v in namespace.items() if not n.startswith("_") and n not in annotations
                         and n not in _KERNEL_NAMES and isinstance(v, _SIMPLE))
        if unknown:
            raise ParameterError(f"unknown parameter {unknown[0]!r}; this notebook's parameters are "
                                 f"{', '.join(n for n in annotations if not n.startswith('_'))}")
    params = {}
    for name, tp in annotations.items():
        if name.startswith("_"):
            continue
        value = namespace.get(name)
        if isinstance(tp, str):  # postponed annotations: evaluate in the namespace
            tp = eval(tp, dict(namespace))  # noqa: S307 - the notebook's own annotation text
        parsed = _from_text(value, tp)
        if parsed is not value and _type_ok(parsed, tp):
            value = namespace[name] = parsed
        if not _type_ok(value, tp):
            raise ParameterError(f"parameter {name!r} must be of type {_type_name(tp)}, got {value!r} ({type(value).__name__})")
        if name in choices and value not in tuple(choices[name]):
            raise ParameterError(f"parameter {name!r} must be one of {', '.join(map(str, choices[name]))}; got {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ParameterError(f"parameter {name!r} must be a finite number, got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
            raise ParameterError(f"parameter {name!r} must fit in 64 bits, got {value!r}")
        lo, hi = (ranges or {}).get(name, (None, None))
        if value is not None and ((lo is not None and value < lo) or (hi is not None and value > hi)):
            raise ParameterError(f"parameter {name!r} must be in [{lo}, {hi}], got {value!r}")
        params[name] = value
    return params


def from_preset(value: Any, preset: str, table: dict[str, Any]) -> Any:
    """`value` if the user set it (not None), else the preset's entry in `table` (keys: smoke/cpu/gpu)."""
    return table[preset] if value is None else value


def outputs_dir(notebook: str) -> str:
    """`$WORKBENCH_OUTPUTS/<notebook>` (default `<repo>/outputs/<notebook>`), created."""
    root = os.environ.get("WORKBENCH_OUTPUTS") or os.path.join(repo_root(), "outputs")
    path = os.path.join(root, notebook)
    os.makedirs(path, exist_ok=True)
    return path


@dataclass
class Claim:
    """One headline comparison: the paper's statement, its number, ours, whether it holds, and — when decided
    from paired comparisons — the verdict (holds / refuted / inconclusive) with its numbers
    (`workbench.evaluation.verdicts.Verdict.to_dict()`: effect, se, ci, n, mde, sesoi, reason, budget)."""

    id: str
    claim: str
    paper: Any
    measured: Any
    holds: bool
    verdict: str | None = None
    evidence: dict | None = None


DEFAULT_PRESET = "cpu"  # the run `make reproduce` makes: its figures sit in figures/<notebook>/
_FIGURE_TAG: list[str | None] = [None]


def figure_tag() -> str | None:
    """Where this run's figures go besides the default run's: None for the default (`cpu`) run, else
    `$WORKBENCH_FIGURES_TAG` (a sweep member's, set by `workbench.run`) or the preset name (`smoke`, `gpu`).
    Set by `Results(...)`, which every notebook builds before its first figure."""
    return _FIGURE_TAG[0]


def figure_tag_for(preset: str) -> str | None:
    """The tag a run of `preset` gets (see `figure_tag`)."""
    env = os.environ.get("WORKBENCH_FIGURES_TAG")
    return env or (None if preset == DEFAULT_PRESET else preset)


@dataclass
class Results:
    """Collects metrics and claims of one notebook run; `save()` writes `results.json`.

    Format: `{"notebook", "preset", "seed", "paper", "key_figure", "figure_tag", "runtime_s", "metrics": {...},
    "claims": [{"id", "claim", "paper", "measured", "holds"}]}`.
    """

    notebook: str
    preset: str
    seed: int
    paper: str = ""  # e.g. "Δlog p (arXiv 2603.22117)"
    key_figure: str = ""  # name of the figure REPORT.md links
    metrics: dict = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def __post_init__(self):
        _FIGURE_TAG[0] = figure_tag_for(self.preset)

    def metric(self, name: str, value: Any) -> None:
        """Record a metric. Returns nothing, so a cell that ends with it shows no stray repr."""
        self.metrics[name] = value

    def claim(self, id: str, claim: str, paper: Any, measured: Any, holds: bool | None = None, *, verdict=None) -> None:
        """Record a claim: `holds` decided by code from the numbers (a bool), or a `verdict` (a `Verdict` of
        `workbench.evaluation.verdicts`), which then also sets `holds`."""
        if verdict is not None:
            holds = verdict.holds
        if holds is None:
            raise ValueError(f"claim {id!r} needs holds=<bool> or verdict=<Verdict>")
        c = Claim(id, claim, paper, measured, bool(holds), *((verdict.verdict, verdict.to_dict()) if verdict is not None else ()))
        self.claims = [x for x in self.claims if x.id != id] + [c]  # returns nothing: no stray repr at a cell's end

    def to_dict(self) -> dict:
        return {
            "notebook": self.notebook, "preset": self.preset, "seed": self.seed,
            "paper": self.paper, "key_figure": self.key_figure, "figure_tag": figure_tag_for(self.preset), "runtime_s": round(time.time() - self.started, 1), "metrics": _jsonable(self.metrics),
            "claims": [_jsonable({k: v for k, v in vars(c).items() if v is not None or k in ("id", "claim", "paper", "measured", "holds")})
                       for c in self.claims],
        }

    def save(self) -> str:
        path = os.path.join(outputs_dir(self.notebook), "results.json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f, indent=1, allow_nan=False)
        os.replace(tmp, path)
        return path

    def _repr_markdown_(self) -> str:
        rows = ["| claim | paper | measured | verdict | evidence |", "|---|---|---|---|---|"]
        rows += [f"| {c.claim} | {format_value(c.paper)} | {format_value(_jsonable(c.measured))} | "
                 f"**{c.verdict or ('holds' if c.holds else 'does not hold')}** | {format_evidence(_jsonable(c.evidence))} |"
                 for c in self.claims]
        return "\n".join(rows)


def format_value(x) -> str:
    """A claim's number for a table cell (the notebook's results table, REPORT.md): floats to 4 significant
    digits, dicts as ``key: value`` pairs (nested ones in parentheses), lists element-wise, null as —."""
    if x is None:  # a non-finite number in results.json (an MDE no budget reaches)
        return "—"
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, dict):
        return ", ".join(f"{k}: ({format_value(v)})" if isinstance(v, dict) else f"{k}: {format_value(v)}"
                         for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in x) + "]"
    return str(x).replace("|", "/")


def format_evidence(e: dict | None) -> str:
    """The numbers behind a verdict in one cell: effect [CI], n, MDE vs SESOI, the reason, the budget."""
    if not e:
        return ""
    ci = e.get("ci") or [None, None]
    text = (f"effect {format_value(e['effect'])} [{format_value(ci[0])}, {format_value(ci[1])}], n {e['n']}, "
            f"MDE {format_value(e['mde'])} vs SESOI {format_value(e['sesoi'])}: {e['reason']}")
    if e.get("budget"):
        text += f"; ≈ {e['budget']} pairs would reach the SESOI"
    return text.replace("|", "/")


def _jsonable(x: Any) -> Any:
    """Plain JSON values: arrays and scalars of numpy/torch as lists and numbers, NaN and ±inf as null (an
    MDE that no budget reaches, a metric of a run that never updated), so results.json is strict JSON."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:
        return _jsonable(x.item())
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
