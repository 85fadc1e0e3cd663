"""Free-form questions about rendered ShapeWorld scenes as a `Task`: the benchmark side of hallucination work.

    task = image_question_task(processor)                # yes/no questions, POPE's answer parsing
    ev = evaluate(model, processor, task, questions, max_new_tokens=4, progress=True)

A problem is anything with a `scene` (rendered on demand), a `prompt` (the question text) and a gold
`label` or `answer`; correctness is `pope_answer(completion) == label` for yes/no items and never true
otherwise (captions are scored by CHAIR on the completions). The prompt goes through the processor's
chat format, so a local Qwen2.5-VL checkpoint is asked in its own template.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.evaluation.hallucination import pope_answer
from workbench.models.vlm import format_vl_prompt
from workbench.rl.tasks.shapes import encode_with_images
from workbench.tasks.base import RewardSpec, Task
from workbench.tasks.shapes.render import render
from workbench.tasks.shapes.scene import Scene


@dataclass(frozen=True)
class ImageQuestion:
    """One question put to a model: the image's `scene`, the `prompt` text and the gold `label`."""

    scene: Scene
    prompt: str
    label: str


def gold(problem) -> str:
    """The gold answer of a problem: its `label`, else its `answer`."""
    return getattr(problem, "label", None) or problem.answer


def yes_no_correct(completion: str, problem) -> bool:
    """POPE's parse of the completion equals the gold yes/no (False for a problem whose gold is neither)."""
    label = gold(problem)
    return label in ("yes", "no") and pope_answer(completion) == label


def image_question_task(processor, name: str = "image questions") -> Task:
    """Evaluation-only task over `problems` with `scene`, `prompt` and `label`/`answer` (no training sampler)."""

    def no_sampling(n, rng):
        raise ValueError(f"task {name!r} is for evaluation only: it has no training problems")

    return Task(name=name, sample=no_sampling, prompt=lambda p: format_vl_prompt(p.prompt, processor),
                rewards=[RewardSpec("correct", lambda c, p: float(yes_no_correct(c, p)))],
                encode=lambda proc, problems, prompts: encode_with_images(proc, prompts, [render(p.scene).image for p in problems]),
                correct=yes_no_correct)
