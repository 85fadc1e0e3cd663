"""ShapeWorld: seeded scenes of coloured shapes with exact masks, scene graphs, questions whose
chain of thought states visual facts then computes, rewards, grounding scores and counterfactual edits.

    from workbench.tasks import shapes
    ex = shapes.generate(1, seed=0, families=("arithmetic",))[0]
    r = ex.render()                       # r.image [112, 112, 3] uint8, r.masks [N, 112, 112] bool, r.graph
    shapes.reward(ex.target, ex.answer)   # 1.0
    shapes.grounding_score(ex.target, r.graph, ex.question.facts).score   # 1.0
"""

from workbench.tasks.shapes.dataset import (EVAL_PATH, ShapesExample, eval_examples, generate, load_eval_set,
                                            make_example, write_eval_set)
from workbench.tasks.shapes import cooccurrence  # noqa: F401  (registers the object and caption families)
from workbench.tasks.shapes.counterfactual import Counterfactual, build_counterfactuals
from workbench.tasks.shapes.edits import EditResult, fill_with_background, remove_object, replace_object
from workbench.tasks.shapes.facts import FactCheck, check_facts, describe, fact_value_mask
from workbench.tasks.shapes.graph import ObjectNode, SceneGraph
from workbench.tasks.shapes.oracle import EXPERT_ERRORS, corrupt_chain, oracle_chain
from workbench.tasks.shapes.preview import show_examples
from workbench.tasks.shapes.questions import FAMILIES, QUESTION_FAMILIES, Question, ask
from workbench.tasks.shapes.raster import SHAPE_KINDS, rasterize
from workbench.tasks.shapes.render import Rendering, background_image, render, scene_graph, shape_masks
from workbench.tasks.shapes.reward import Grounding, format_ok, grounding_score, parse_answer, reward
from workbench.tasks.shapes.sampler import sample_kinds, sample_scene
from workbench.tasks.shapes.scene import (BACKGROUNDS, COLOURS, CooccurrenceBias, Scene, SceneConfig, Shape,
                                          complexity_config)

__all__ = [
    "EVAL_PATH", "ShapesExample", "eval_examples", "generate", "load_eval_set", "make_example", "write_eval_set",
    "Counterfactual", "build_counterfactuals", "cooccurrence", "EditResult", "fill_with_background", "remove_object", "replace_object",
    "EXPERT_ERRORS", "corrupt_chain", "oracle_chain", "FactCheck", "check_facts", "describe", "fact_value_mask", "ObjectNode", "SceneGraph", "show_examples",
    "FAMILIES", "QUESTION_FAMILIES", "Question", "ask", "SHAPE_KINDS", "rasterize",
    "Rendering", "background_image", "render", "scene_graph", "shape_masks",
    "Grounding", "format_ok", "grounding_score", "parse_answer", "reward", "sample_kinds", "sample_scene",
    "BACKGROUNDS", "COLOURS", "CooccurrenceBias", "Scene", "SceneConfig", "Shape", "complexity_config",
]
