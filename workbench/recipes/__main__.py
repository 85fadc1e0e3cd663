"""`python -m workbench.recipes grpo|dapo|dr_grpo|fipo [--seed S] [--steps N] [--lr LR]`: the cpu RL preset on
tiny-arith, printing held-out accuracy before/after and the curve (not cached: the zoo names
`tiny-arith-grpo` / `tiny-arith-dapo` are the cached runs).

`python -m workbench.recipes shapes-grpo [--seeds 0 1 2] [--steps N] [--lr LR]`: GRPO on the ShapeWorld RL base
`tiny-shapes-vl-rl`, per seed greedy accuracy before/after with its paired SE and pass@k (`recipes.shapes_rl`)."""

import argparse

from workbench.recipes.rl_arith import rl_arith
from workbench.recipes.shapes_rl import gains_report, shapes_rl_gains


def main() -> None:
    ap = argparse.ArgumentParser(description="Run the cpu RL preset on tiny-arith and print the accuracy curve.")
    ap.add_argument("method", choices=["grpo", "dapo", "dr_grpo", "fipo", "shapes-grpo"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="shapes-grpo: RL seeds")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None)
    args = ap.parse_args()
    over = {k: v for k, v in (("steps", args.steps), ("lr", args.lr)) if v is not None}
    if args.method == "shapes-grpo":
        print(gains_report(shapes_rl_gains(seeds=args.seeds, **over)))
        return
    _, _, info = rl_arith(args.method, args.seed, **over)
    print(f"{args.method}: held-out greedy accuracy {info['base_accuracy_500']:.3f} -> {info['final_accuracy_500']:.3f} "
          f"(+{100 * (info['final_accuracy_500'] - info['base_accuracy_500']):.1f} points) in {info['train_seconds']:.0f} s")
    print("curve (step, accuracy on 200):", info["eval_curve_200"])



if __name__ == "__main__":
    main()
