"""Figure 2's trend: does loafing grow with depth? One sweep over several depths of one family.

For each model (e.g. resnet20, 32, 44, 56) CT and ST are trained with the same recipe (or
reused from a runs folder, resumed when a run stopped early). The smallest ordered sub-net,
one block per stage, has the same architecture at every depth: it is trained alone once and
shared. Per depth the report gives the main nets' accuracy, that sub-net alone vs inside CT
vs inside ST, and the mean +- std and min over all ordered sub-nets (a seeded sample above
``limit``), in both BN settings.

A run folder is ``RUNS/<model>-<method>`` (the alone-net: ``RUNS/alone-<plan>``); a folder that
finished with the same recipe is reused, one that stopped early is resumed, and one with a
different recipe is an error naming the differing setting, so nothing is overwritten.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from .. import checkpoint as ckpt
from ..data import ImageData
from ..evaluate import BN_MODES, BNMode, accuracy, calibration_images, select_plans, summarize
from ..models import ResidualNet, build_model
from ..plan import SubnetPlan
from .common import ExperimentCancelled, Partial, Progress, ShouldStop
from .loafing import FixedPlanTraining
from .prefix_sweep import tree_sweep

__all__ = ["RECIPE_KEYS", "depth_summary", "depth_sweep", "depth_table", "trend"]

#: the settings a reused run must share with the sweep's recipe
RECIPE_KEYS = ("dataset", "epochs", "batch_size", "lr", "momentum", "weight_decay", "seed")


def _smallest_plan(model: ResidualNet) -> SubnetPlan:
    return SubnetPlan.from_depths(model.layout, [1] * len(model.layout.stages))


def _check_shared_smallest(models: dict[str, ResidualNet]) -> None:
    """The one-block-per-stage sub-net must be the same architecture at every depth."""
    sizes = {name: m.plan_parameters(_smallest_plan(m)) for name, m in models.items()}
    stages = {name: len(m.layout.stages) for name, m in models.items()}
    if len(set(sizes.values())) > 1 or len(set(stages.values())) > 1:
        listing = ", ".join(f"{n}: {stages[n]} stages, {sizes[n]:,} parameters" for n in models)
        raise ValueError("a depth sweep compares depths of one family, whose one-block-per-stage sub-net is the "
                         f"same network at every depth; these differ ({listing}). To compare nets whose "
                         "smaller one is a sub-net of the bigger (DenseNets, the paper's tables 2-3), run "
                         "'analyze loafing' on several CT/ST runs (the triangle)")


class _Runs:
    """Trains, resumes or reuses the sweep's run folders."""

    def __init__(self, root: Path, recipe: dict[str, Any], data: ImageData, device: str,
                 on_epoch: Any, should_stop: ShouldStop) -> None:
        self.root, self.recipe, self.data, self.device = root, recipe, data, device
        self.on_epoch, self.should_stop = on_epoch, should_stop

    def _matching(self, folder: Path) -> int:
        """Finished epochs of a compatible run in ``folder`` (0: none there)."""
        if not (folder / ckpt.META_FILE).exists():
            return 0
        meta = ckpt.load_checkpoint(folder).meta
        config = meta.get("config") or {}
        for key in RECIPE_KEYS:
            if key == "epochs":
                continue
            if config.get(key) != self.recipe[key]:
                raise ValueError(f"{folder} holds a run with {key}={config.get(key)!r}, not the sweep's "
                                 f"{self.recipe[key]!r}; choose another --runs folder or move it away")
        return int(meta.get("epoch", 0))

    def get(self, name: str, arch: str, method: str, fixed_plan: str | None = None) -> tuple[ResidualNet, str]:
        """The trained model of run ``name``, and how it was obtained (reused/resumed/trained)."""
        from ..train import TrainConfig, Trainer, TrainEvents

        folder = self.root / name
        done = self._matching(folder)
        epochs = int(self.recipe["epochs"])
        if done >= epochs:
            return ckpt.load_checkpoint(folder, device=self.device).model, "reused"

        outer = self

        class Events(TrainEvents):
            def on_epoch(self, info: dict[str, Any]) -> None:
                outer.on_epoch()

        fixed = FixedPlanTraining(fixed_plan) if fixed_plan else None
        if done:
            trainer = Trainer.resume(folder, events=[Events()], method=fixed, epochs=epochs)
            how = "resumed"
        else:
            config = TrainConfig(model=arch, method="ct" if fixed_plan else method, device=self.device,
                                 **{k: self.recipe[k] for k in RECIPE_KEYS})
            trainer = Trainer(config, data=self.data, out_dir=folder, events=[Events()], method=fixed)
            how = "trained"
        for _ in trainer.iter_steps():
            if self.should_stop is not None and self.should_stop():
                trainer.control.stop()
        if trainer.control.stopped:
            raise ExperimentCancelled("depth sweep cancelled (finished epochs are kept and resume next time)")
        return trainer.model.eval(), how


def depth_sweep(
    models: Sequence[str],
    data: ImageData,
    *,
    runs_dir: str | Path,
    epochs: int = 30,
    methods: Sequence[str] = ("ct", "st"),
    bn: Sequence[str] = BN_MODES,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 0.05,
    limit: int = 1000,
    calib_n: int = 1000,
    device: str = "cpu",
    progress: Progress = None,
    should_stop: ShouldStop = None,
    partial: Partial = None,
) -> dict[str, Any]:
    """The sweep (see the module docstring); returns the report dict, partial after each depth."""
    t0 = time.perf_counter()
    models = list(dict.fromkeys(models))
    if len(models) < 2:
        raise ValueError("a depth sweep needs at least two models, e.g. resnet20,resnet32")
    methods = list(dict.fromkeys(methods))
    if "ct" not in methods:
        raise ValueError("a depth sweep needs ct among its methods: loafing is measured inside the CT net")
    modes = [cast(BNMode, b) for b in BN_MODES if b in set(bn)]
    if not modes:
        raise ValueError(f"no BN setting chosen; use {', '.join(BN_MODES)} or both")
    shapes = {m: build_model(m, data.num_classes, data.in_channels, data.image_size) for m in models}
    _check_shared_smallest(shapes)
    models.sort(key=lambda m: shapes[m].layout.num_blocks)
    recipe = {"dataset": data.name, "epochs": epochs, "batch_size": batch_size, "lr": lr, "momentum": 0.9,
              "weight_decay": 5e-4, "seed": seed}
    total_epochs = epochs * (len(models) * len(methods) + 1)
    done_epochs = [0]

    def tick() -> None:
        done_epochs[0] += 1
        if progress is not None:
            progress(min(done_epochs[0], total_epochs), total_epochs)

    runs = _Runs(Path(runs_dir), recipe, data, device, tick, should_stop)
    calib = calibration_images(data.train_x, calib_n, seed) if "recalibrate" in modes else None
    test_x, test_y = data.test_x, data.test_y
    smallest = _smallest_plan(shapes[models[0]])
    depths_text = ",".join(str(d) for d in smallest.depths)
    alone_model, alone_how = runs.get(f"alone-{depths_text}", models[0], "ct", fixed_plan=str(smallest))
    report: dict[str, Any] = {
        "analysis": "depth", "dataset": data.name, "models": models, "methods": methods, "bn": modes,
        "recipe": recipe, "seed": seed, "limit": limit, "n_images": int(len(test_y)),
        "calib_images": 0 if calib is None else int(len(calib)), "runs_dir": str(runs_dir),
        "smallest_plan": f"depths:{depths_text}",
        "alone": {"run": str(Path(runs_dir) / f"alone-{depths_text}"), "how": alone_how,
                  "accuracy": round(accuracy(alone_model, smallest, test_x, test_y), 4)},
        "rows": [],
    }
    for arch in models:
        row: dict[str, Any] = {"model": arch, "blocks": shapes[arch].layout.num_blocks,
                               "stage_depths": list(shapes[arch].layout.depths), "runs": {}, "smallest": {},
                               "subnets": {}}
        for method in methods:
            model, how = runs.get(f"{arch}-{method}", arch, method)
            small_plan = _smallest_plan(model)
            row["runs"][method] = {"run": str(Path(runs_dir) / f"{arch}-{method}"), "how": how,
                                   "main_acc": round(accuracy(model, None, test_x, test_y), 4)}
            plans, sampled = select_plans(model, limit, seed)
            row["n_subnets"], row["sampled"] = len(plans), sampled
            row["smallest"][method], row["subnets"][method] = {}, {}
            for mode in modes:
                calib_for = calib if mode == "recalibrate" else None
                row["smallest"][method][mode] = round(
                    accuracy(model, small_plan, test_x, test_y, bn=mode, calib_images=calib_for), 4)
                result = tree_sweep(model, plans, test_x, test_y, bn=mode, calib_images=calib_for,
                                    should_stop=should_stop)
                if len(result.results) < len(plans):
                    raise ExperimentCancelled("depth sweep cancelled")
                row["subnets"][method][mode] = {k: round(v, 4) for k, v in summarize(result.accuracies).items()}
        report["rows"].append(row)
        report["trend"] = trend(report)
        report["seconds"] = round(time.perf_counter() - t0, 3)
        if partial is not None and len(report["rows"]) < len(models):
            partial(copy.deepcopy(report))  # the GUI reads it while the next depth appends rows
    return report


def trend(report: dict[str, Any]) -> dict[str, Any]:
    """Plain answers: per method and BN setting, does the smallest sub-net fall further below its
    alone accuracy as depth grows (every step deeper loafs at least as much), and does the
    all-sub-net mean fall?"""
    rows = report["rows"]
    alone = report["alone"]["accuracy"]
    out: dict[str, Any] = {}
    for method in report["methods"]:
        for mode in report["bn"]:
            gaps = [round(alone - r["smallest"][method][mode], 4) for r in rows]
            means = [r["subnets"][method][mode]["mean"] for r in rows]
            out[f"{method}/{mode}"] = {
                "gap_to_alone": gaps,
                "gap_grows_with_depth": len(gaps) > 1 and all(b >= a for a, b in zip(gaps, gaps[1:])),
                "subnet_mean": means,
                "mean_falls_with_depth": len(means) > 1 and all(b <= a for a, b in zip(means, means[1:])),
            }
    return out


def depth_table(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """CSV: one row per model, method and BN setting."""
    header = ["model", "blocks", "method", "bn", "main_acc", "smallest_alone", "smallest_inside",
              "subnets_mean", "subnets_std", "subnets_min", "n_subnets", "sampled"]
    rows = []
    for r in report["rows"]:
        for method in report["methods"]:
            for mode in report["bn"]:
                s = r["subnets"][method][mode]
                rows.append([r["model"], r["blocks"], method, mode, r["runs"][method]["main_acc"],
                             report["alone"]["accuracy"], r["smallest"][method][mode], s["mean"], s["std"], s["min"],
                             r["n_subnets"], r["sampled"]])
    return header, rows


def depth_summary(report: dict[str, Any]) -> list[str]:
    """Plain lines for the terminal: the table, then whether the paper's trend holds."""
    alone = report["alone"]["accuracy"]
    lines = [f"depth sweep on {report['dataset']} ({report['recipe']['epochs']} epochs, seed {report['seed']}); "
             f"smallest sub-net {report['smallest_plan']} trained alone: {alone:.2f}%"]
    for mode in report["bn"]:
        lines.append(f"BN: {mode}")
        for r in report["rows"]:
            parts = [f"  {r['model']:<10}"]
            for method in report["methods"]:
                s = r["subnets"][method][mode]
                parts.append(f"{method.upper()} main {r['runs'][method]['main_acc']:.2f}, smallest "
                             f"{r['smallest'][method][mode]:.2f}, sub-nets {s['mean']:.2f} +- {s['std']:.2f} "
                             f"(min {s['min']:.2f})")
            lines.append(" | ".join(parts))
        for method in report["methods"]:
            t = report.get("trend", {}).get(f"{method}/{mode}")
            if t:
                lines.append(f"  {method.upper()}: the smallest sub-net's gap to alone "
                             f"{'grows' if t['gap_grows_with_depth'] else 'does not grow steadily'} with depth "
                             f"({', '.join(f'{g:.1f}' for g in t['gap_to_alone'])} points); the sub-net mean "
                             f"{'falls' if t['mean_falls_with_depth'] else 'does not fall steadily'}")
    return lines
