"""Every zoo model's training recipe, registered into `workbench.models.zoo.RECIPES` on import.

`load_model("tiny-arith")` imports this package the first time it meets a name it does not know (the zoo's
plugin list, `ZOO_PLUGINS`), so recipes sit above everything they use (tasks, models, SFT, RL, the
evaluator) and the model layer imports none of them.

| zoo name | recipe | used by |
|---|---|---|
| `tiny-arith` | `arith.py` | 00 quickstart, 01 Δlog p |
| `tiny-arith-grpo`, `tiny-arith-dapo` | `rl_arith.py` | 00, 01 (the cpu preset's cached RL runs) |
| `tiny-arith-long`, `-smoke` | `arith_long.py` | 02 FIPO |
| `tiny-shapes-vl`, `-arith`, `-smoke` | `shapes_vl.py` | 03 ToR |
| `tiny-shapes-vl-percept`, `tiny-shapes-vl-cooc-r0/-r50/-r90` (+ `-smoke` twins) | `shapes_vl_cooc.py` | 07 Causal-HalBench |
| `tiny-react-vl`, `-smoke` (on `tiny-shapes-vl-percept`) | `video_vl.py` | 08 REACT |
| `tiny-haystack`, `-smoke` | `haystack.py` | 09 PHSA |
| `tiny-shapes-diffusion`, `tiny-shapes-seg` (+ `-smoke` twins) | `shapes_diffusion.py` | 10 HGC |

    python -m workbench.recipes grpo     # the cpu RL preset on tiny-arith, printing the accuracy curve
"""

from workbench.recipes import (arith, arith_long, haystack, rl_arith, shapes_diffusion, shapes_vl,  # noqa: F401  (register)
                               shapes_vl_cooc, video_vl)
