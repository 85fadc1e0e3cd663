"""Training curves that redraw in the notebook while a run goes, and stay as the final static figure.

    curve = live_curve("SFT tiny-arith", keys=("loss",))     # None unless a live notebook frontend is attached
    for step ...:
        if curve: curve({"step": step, "loss": loss})          # redrawn at most every `min_seconds`
    if curve: curve.close()                                    # the final figure, every point drawn

Every trainer (`train.sft`, `rl.train`, `preference.train_preference`, `train.train_diffusion`) opens one when it
runs inside a live Jupyter kernel, so long runs show their curve without any code in the notebook. The figure is
a PNG image in one output area, updated in place (`IPython.display` handle): runs of the same trainer in one
cell share that area, so a 40-run ablation shows one moving curve, not forty. Headless runs (papermill through
`workbench.run`, `$WORKBENCH_HEADLESS` = 1) and plain Python draw nothing — their progress bars' final lines and
the notebook's own figures are the record — and `$WORKBENCH_LIVE_CURVES` = 0 turns the curves off live too.
"""

from __future__ import annotations

import io
import math
import os
import time
from typing import Callable, Sequence

from workbench.utils import headless

LIVE_ENV = "WORKBENCH_LIVE_CURVES"
_AREAS: dict[str, tuple[int, list]] = {}  # trainer kind -> (execution count, display handle) of its output area


def live_frontend() -> bool:
    """True inside a Jupyter kernel that is not headless and has live curves on (`$WORKBENCH_LIVE_CURVES` ≠ 0)."""
    if headless() or os.environ.get(LIVE_ENV, "1") == "0":
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class LiveCurve:
    """A curve of `keys` against `step`, drawn through `show(png_bytes)` at most every `min_seconds` (and on
    `close`). `points[key]` holds the (step, value) pairs received; non-finite values are skipped."""

    def __init__(self, title: str, keys: Sequence[str], show: Callable[[bytes], None], *, min_seconds: float = 2.0):
        if not keys:
            raise ValueError("a live curve needs at least one metric key, got none")
        self.title, self.keys, self.show, self.min_seconds = title, tuple(keys), show, min_seconds
        self.points: dict[str, list[tuple[float, float]]] = {k: [] for k in self.keys}
        self.draws = 0
        self._last = -math.inf

    def __call__(self, metrics: dict) -> None:
        """Record the metrics of one step (`metrics["step"]` and any of `keys`); redraw when due."""
        step = metrics.get("step")
        if step is None:
            return
        for k in self.keys:
            v = metrics.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                self.points[k].append((float(step), float(v)))
        if time.monotonic() - self._last >= self.min_seconds:
            self.draw()

    def draw(self) -> None:
        """Render the curve (one panel per key) and pass the PNG to `show`."""
        import matplotlib

        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(3.2 * len(self.keys), 2.4), dpi=90)
        FigureCanvasAgg(fig)
        colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, k in enumerate(self.keys):
            ax = fig.add_subplot(1, len(self.keys), i + 1)
            pts = self.points[k]
            ax.plot([s for s, _ in pts], [v for _, v in pts], lw=1.2, color=colors[i % len(colors)])
            last = f" = {pts[-1][1]:.4g} at step {pts[-1][0]:g}" if pts else ""
            ax.set_title(f"{k}{last}", fontsize=8)
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=7)
        fig.suptitle(self.title, fontsize=9)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        self.show(buf.getvalue())
        self.draws += 1
        self._last = time.monotonic()

    def close(self) -> None:
        """Draw the final curve with every point received."""
        self.draw()


def _area_show(kind: str) -> Callable[[bytes], None]:
    """`show` for a live curve of trainer `kind`: fills, then updates, the output area this cell holds for `kind`."""
    from IPython import get_ipython
    from IPython.display import DisplayHandle, Image

    count = getattr(get_ipython(), "execution_count", None)
    held = _AREAS.get(kind)
    if held is None or held[0] != count:
        held = (count, [DisplayHandle(), False])
        _AREAS[kind] = held
    area = held[1]

    def show(png: bytes) -> None:
        handle, shown = area
        (handle.update if shown else handle.display)(Image(data=png, format="png"))
        area[1] = True

    return show


def live_curve(title: str, keys: Sequence[str], kind: str | None = None) -> LiveCurve | None:
    """A `LiveCurve` shown in the notebook when `live_frontend()`, else None. `kind` (default: `title`'s first
    word) names the output area runs of the same trainer share within one cell."""
    if not live_frontend():
        return None
    return LiveCurve(title, keys, _area_show(kind or title.split(" ")[0]))
