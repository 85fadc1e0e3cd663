"""A notebook's presets: one table of smoke / cpu / gpu values, resolved against its parameters cell.

    PRESETS = Presets({"smoke": dict(n_eval=64), "cpu": dict(n_eval=500), "gpu": dict(n_eval=500)},
                      ranges={"n_eval": (1, None)})
    P = PRESETS.resolve(globals())      # in the notebook's second cell: validated, None filled in
    P.n_eval

A table entry named like a parameter fills that parameter when the user left it None; any other entry is a
derived setting of the preset (e.g. an RL config shared by every run). A parameter that is not None is
never overridden.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from workbench.notebook import PRESETS as PRESET_NAMES
from workbench.notebook import ParameterError, check_parameters


class Params(SimpleNamespace):
    """Resolved parameters: attribute access, `as_dict()` for results files."""

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class Presets:
    """`table[preset]`: values for parameters left None and derived settings; `choices` / `ranges` as
    `workbench.notebook.check_parameters` takes them."""

    table: dict[str, dict[str, Any]]
    choices: dict = field(default_factory=dict)
    ranges: dict = field(default_factory=dict)

    def __post_init__(self):
        missing = [p for p in PRESET_NAMES if p not in self.table]
        if missing:
            raise ValueError(f"a preset table needs an entry for every preset; missing {', '.join(missing)}")

    def resolve(self, namespace: dict) -> Params:
        """Validate the parameters cell (`namespace` = the notebook's `globals()`), then fill every None
        parameter from the preset's row and add the row's derived settings.

        Raises:
            ParameterError: one sentence naming a bad parameter value.
        """
        __tracebackhide__ = True
        params = check_parameters(namespace, choices=self.choices, ranges=self.ranges)
        row = self.table[params["preset"]]
        out = dict(params)
        for key, value in row.items():
            if key not in out or out[key] is None:
                out[key] = value
        return Params(**out)

    def values(self, preset: str, **params) -> Params:
        """The same resolution outside a notebook: `preset` and explicit `params` (None = from the table)."""
        if preset not in self.table:
            raise ParameterError(f"parameter 'preset' must be one of {', '.join(self.table)}; got {preset!r}")
        out = {"preset": preset, **params}
        for key, value in self.table[preset].items():
            if out.get(key) is None:
                out[key] = value
        return Params(**out)
