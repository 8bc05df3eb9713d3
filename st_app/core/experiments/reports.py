"""Complete, traceable reports of the analyses: one code path for the CLI and the app.

A *report* is the plain JSON-ready dict an analysis produces: the numbers from
:mod:`st_app.core.experiments` plus the header that makes a result traceable (checkpoint
ids and paths, BN setting, seeds, image counts). ``python -m st_app analyze`` and the app's
Analyses tab both build reports here, so a figure saved from the app and one written by the
CLI carry the same keys. :func:`write_report` writes ``<analysis>.json`` and the CSV;
figures are drawn by ``st_app.figures`` (Qt), which the callers add.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import Tensor

from ..data import ImageData
from ..evaluate import BNMode, calibration_images
from ..plan import SubnetPlan
from ..report_text import format_points_lost
from ..safeio import check_output_folder, write_text
from .common import Partial, Progress, ShouldStop, check_same_architecture, checkpoint_info
from .depth import depth_summary, depth_table
from .triangle import triangle_summary, triangle_table

__all__ = [
    "ANALYSES",
    "compare_report",
    "importance_report",
    "format_points_lost",
    "loafing_report",
    "report_table",
    "robustness_report",
    "subnets_report",
    "summary_lines",
    "write_report",
]

ANALYSES = ("loafing", "subnets", "robustness", "importance", "compare", "loafing_triangle")


def _check_bn(bn: str) -> BNMode:
    if bn == "main":
        return "main"
    if bn == "recalibrate":
        return "recalibrate"
    raise ValueError(f"unknown BN setting {bn!r}; choose 'main' or 'recalibrate'")


def _header(analysis: str, ct: Any, st: Any, data: ImageData, bn: str, calib: Tensor | None,
            seed: int) -> dict[str, Any]:
    return {
        "analysis": analysis,
        "checkpoints": {"ct": checkpoint_info(ct), "st": checkpoint_info(st)},
        "arch": ct.model.config.arch,
        "dataset": data.name,
        "n_images": int(len(data.test_y)),
        "bn": bn,
        "calib_images": 0 if calib is None else int(len(calib)),
        "seed": seed,
    }


def _headed(partial: Partial, head: dict[str, Any], **tail: Any) -> Partial:
    """``partial`` fed with complete reports: the header, the part so far, then ``tail``."""
    if partial is None:
        return None
    return lambda body: partial({**head, **body, **tail})


def _calibration(data: ImageData, bn: str, n: int, seed: int, always: bool = False) -> Tensor | None:
    return calibration_images(data.train_x, n, seed) if bn == "recalibrate" or always else None


def _start(analysis: str, ct: Any, st: Any, data: ImageData, bn: str, calib_n: int, seed: int,
           always_calibrate: bool = False) -> tuple[Tensor | None, dict[str, Any]]:
    """Checks every CT-vs-ST analysis makes first; its calibration images and report header."""
    _check_bn(bn)
    check_same_architecture({"ct": ct.model, "st": st.model})
    calib = _calibration(data, bn, calib_n, seed, always_calibrate)
    return calib, _header(analysis, ct, st, data, bn, calib, seed)


def loafing_report(
    ct: Any,
    st: Any,
    data: ImageData,
    *,
    plans: Sequence[SubnetPlan] | None = None,
    epochs: int | None = None,
    bn: str = "main",
    calib_n: int = 1000,
    seed: int = 0,
    device: str = "auto",
    progress: Progress = None,
    should_stop: ShouldStop = None,
    partial: Partial = None,
) -> dict[str, Any]:
    """Figure 2: each plan trained alone with the CT recipe vs inside CT and ST (both BN settings)."""
    from .loafing import loafing

    # calibration images always: cheap here, and both BN settings are reported
    calib, head = _start("loafing", ct, st, data, bn, calib_n, seed, always_calibrate=True)
    assert calib is not None  # always_calibrate
    result = loafing(ct, st, data, plans=plans, epochs=epochs, bn=_check_bn(bn), calib_images=calib, device=device,
                     progress=progress, should_stop=should_stop,
                     partial=_headed(partial, head, calib_images=int(len(calib))))
    return {**head, **result.to_dict(), "calib_images": int(len(calib))}


def subnets_report(
    ct: Any,
    st: Any,
    data: ImageData,
    *,
    bn: str = "main",
    calib_n: int = 1000,
    limit: int = 1000,
    seed: int = 0,
    progress: Progress = None,
    should_stop: ShouldStop = None,
    partial: Partial = None,
) -> dict[str, Any]:
    """Figure 5: every ordered sub-net (or a seeded sample of ``limit``), CT vs ST."""
    from .subnets import subnet_statistics

    calib, head = _start("subnets", ct, st, data, bn, calib_n, seed)
    result = subnet_statistics({"ct": ct.model, "st": st.model}, data.test_x, data.test_y, bn=bn,
                               calib_images=calib, limit=limit, seed=seed, progress=progress,
                               should_stop=should_stop, partial=_headed(partial, head))
    return {**head, **result.to_dict()}


def robustness_report(
    ct: Any,
    st: Any,
    data: ImageData,
    *,
    bn: str = "main",
    calib_n: int = 1000,
    max_k: int = 4,
    repeats: int = 10,
    max_swaps: int | None = None,
    seed: int = 0,
    progress: Progress = None,
    should_stop: ShouldStop = None,
    partial: Partial = None,
) -> dict[str, Any]:
    """Figure 6: delete one block, delete k random blocks, swap k random pairs; CT vs ST."""
    from .robustness import robustness

    calib, head = _start("robustness", ct, st, data, bn, calib_n, seed)
    result = robustness({"ct": ct.model, "st": st.model}, data.test_x, data.test_y, bn=bn, calib_images=calib,
                        max_k=max_k, repeats=repeats, max_swap_pairs=max_swaps, seed=seed, progress=progress,
                        should_stop=should_stop, partial=_headed(partial, head))
    return {**head, **result.to_dict()}


def importance_report(
    ct: Any,
    st: Any,
    data: ImageData,
    *,
    bn: str = "main",
    calib_n: int = 1000,
    seed: int = 0,
    progress: Progress = None,
    should_stop: ShouldStop = None,
    partial: Partial = None,
) -> dict[str, Any]:
    """Figure 6a alone: accuracy lost when each block alone is deleted, CT and ST (the graph's colours)."""
    from .common import Steps
    from .robustness import delete_one_accuracies

    calib, head = _start("importance", ct, st, data, bn, calib_n, seed)
    n_plans = ct.model.layout.num_blocks + 1
    steps = Steps(2 * n_plans, progress, should_stop)
    report = {**head, "main": {}, "delete_one": {}, "importance": {}}
    for k, (name, ck) in enumerate((("ct", ct), ("st", st))):
        steps.check()
        main, without = delete_one_accuracies(ck.model, data.test_x, data.test_y, bn=bn, calib_images=calib,
                                              progress=steps.sub(k * n_plans), should_stop=should_stop)
        report["main"][name] = round(main, 4)
        report["importance"][name] = [round(main - a, 4) for a in without]
        report["delete_one"][name] = [{"block": b, "accuracy": round(a, 4), "drop": round(main - a, 4)}
                                      for b, a in enumerate(without)]
        if partial is not None and name == "ct":
            partial(copy.deepcopy(report))
    return report


def compare_report(
    *,
    bn: str = "main",
    calib_n: int = 1000,
    progress: Progress = None,
    should_stop: ShouldStop = None,
    partial: Partial = None,
    **options: Any,
) -> dict[str, Any]:
    """Table 1: every method trained with one recipe; time, memory, main net, all sub-nets.

    ``options`` are :func:`~st_app.core.experiments.compare_methods`' keyword arguments
    (model, dataset, epochs, methods, seed, batch_size, lr, device, runs_dir, isolate, ...).
    """
    from .compare import compare_methods

    _check_bn(bn)

    def complete(body: dict[str, Any]) -> dict[str, Any]:
        return {"analysis": "compare",
                "checkpoints": {r["method"]: {"path": r["run"], "epoch": r["epoch"]} for r in body["methods"]},
                **body}

    result = compare_methods(bn=bn, n_calib=calib_n, progress=progress, should_stop=should_stop,
                             partial=None if partial is None else lambda body: partial(complete(body)), **options)
    return complete(result.to_dict())


# ------------------------------------------------------------------------------- tables
def _loafing_table(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    header = ["plan", "depths", "alone", "within_ct", "within_st", "bn", "within_ct_other_bn",
              "within_st_other_bn", "alone_epochs"]
    rows = [[r["plan"], " ".join(map(str, r["depths"])), r["alone"], r["within_ct"], r["within_st"], report["bn"],
             r.get("other_bn", {}).get("within_ct"), r.get("other_bn", {}).get("within_st"), r["alone_epochs"]]
            for r in report["results"]]
    return header, rows


def _subnets_table(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    st_acc = {r["plan"]: r["accuracy"] for r in report.get("st", {}).get("results", [])}  # none yet: partial
    rows = [[r["plan"], " ".join(map(str, r["depths"])), r["accuracy"], st_acc.get(r["plan"]), report["bn"]]
            for r in report["ct"]["results"]]
    return ["plan", "depths", "ct", "st", "bn"], rows


def _robustness_table(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows: list[list[Any]] = []
    for n in report["main"]:
        rows.append(["main", n, "", report["main"][n], "", "", ""])
        rows += [["delete_one", n, r["block"], r["accuracy"], "", "", ""] for r in report["delete_one"][n]]
        for key in ("delete_k", "swap_k"):
            rows += [[key, n, r["k"], r["mean"], r["std"], r["min"], r["max"]] for r in report[key][n]]
    return ["experiment", "model", "block_or_k", "accuracy_or_mean", "std", "min", "max"], rows


def _importance_table(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    rows = [[r["block"], report["main"][n], r["accuracy"], r["drop"], n, report["bn"]]
            for n in report["delete_one"] for r in report["delete_one"][n]]
    return ["block", "main", "accuracy_without_block", "drop", "model", "bn"], rows


COMPARE_KEYS = ["method", "seconds", "train_seconds", "peak_memory_mb", "process_peak_mb", "main_accuracy",
                "subnets_mean", "subnets_std", "subnets_min", "subnets_max", "epoch", "bn_reestimate", "run"]


def _compare_table(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    return list(COMPARE_KEYS), [[r.get(k) for k in COMPARE_KEYS] for r in report["methods"]]


_TABLES = {"importance": _importance_table, "loafing": _loafing_table, "subnets": _subnets_table,
           "robustness": _robustness_table, "depth": depth_table,
           "compare": _compare_table, "loafing_triangle": triangle_table}


def report_table(report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The report's numbers as one flat table (header, rows): what the CSV holds."""
    return _TABLES[report["analysis"]](report)


# ------------------------------------------------------------------------------ summaries
def _fmt(v: Any, spec: str = "6.2f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _loafing_summary(report: dict[str, Any]) -> list[str]:
    overrides = report.get("overrides") or {}
    lines = [f"loafing ({report['arch']}, {report['dataset']}, BN {report['bn']}; alone-nets trained "
             f"{report['trained_with']['epochs']} epochs with the CT recipe"
             + (f", overrides {overrides}" if overrides else "") + ")"]
    for r in report["results"]:
        lines.append(f"  {r['plan']:<24} alone {_fmt(r['alone'])}%   inside CT {_fmt(r['within_ct'])}%   "
                     f"inside ST {_fmt(r['within_st'])}%")
    return lines


def _subnets_summary(report: dict[str, Any]) -> list[str]:
    lines = [f"{report['n_plans']} {'sampled ' if report['sampled'] else ''}ordered sub-nets of "
             f"{report['arch']} on {report['n_images']} {report['dataset']} test images, BN {report['bn']}"]
    for n in (n for n in ("ct", "st") if n in report):
        s = report[n]
        lines.append(f"  {n.upper()}: mean {_fmt(s['mean'])}% +- {_fmt(s['std'], '5.2f')}, "
                     f"min {_fmt(s['min'])}%, max {_fmt(s['max'])}%")
    return lines


def _robustness_summary(report: dict[str, Any]) -> list[str]:
    lines = [f"robustness of {report['arch']} ({report['n_images']} test images, BN {report['bn']}, "
             f"{report['repeats']} draws per k, seed {report['seed']})"]
    for n in report["delete_one"]:
        worst = max(report["delete_one"][n], key=lambda r: r["drop"])
        ks = ", ".join(f"k={r['k']}: {r['mean']:.1f}+-{r['std']:.1f}" for r in report["delete_k"][n])
        sw = ", ".join(f"k={r['k']}: {r['mean']:.1f}+-{r['std']:.1f}" for r in report["swap_k"][n])
        lines.append(f"  {n.upper()}: main {report['main'][n]:.2f}%, most important block {worst['block']} "
                     f"({format_points_lost(worst['drop'])} points lost), delete {ks}; swap {sw or '-'}")
    return lines


def _importance_summary(report: dict[str, Any]) -> list[str]:
    lines = [f"block importance of {report['arch']} ({report['n_images']} test images, BN {report['bn']}): "
             "accuracy lost when one block alone is deleted"]
    for n in report["delete_one"]:
        rows = sorted(report["delete_one"][n], key=lambda r: -r["drop"])
        top = ", ".join(f"{r['block']} ({format_points_lost(r['drop'])})" for r in rows[:3])
        mean = sum(r["drop"] for r in rows) / max(1, len(rows))
        lines.append(f"  {n.upper()}: main {report['main'][n]:.2f}%, mean loss {mean:.1f} points, "
                     f"most important blocks (points lost) {top}")
    return lines


def _compare_summary(report: dict[str, Any]) -> list[str]:
    lines = [f"{report['model']} on {report['dataset']}, {report['epochs']} epochs, seed {report['seed']}, "
             f"BN {report['bn']}; memory: {report['memory_method']}",
             f"  {'method':12} {'time':>9} {'memory':>10} {'main':>8} {'all sub-nets':>16}"]
    for r in report["methods"]:
        lines.append(f"  {r['method']:12} {r['seconds']:8.1f}s {r['peak_memory_mb']:7.1f} MiB "
                     f"{_fmt(r['main_accuracy'], '7.2f')}% {_fmt(r['subnets_mean'], '7.2f')} +- "
                     f"{_fmt(r['subnets_std'], '5.2f')}")
    return lines


_SUMMARIES = {"importance": _importance_summary, "loafing": _loafing_summary, "subnets": _subnets_summary,
              "depth": depth_summary,
              "robustness": _robustness_summary, "compare": _compare_summary, "loafing_triangle": triangle_summary}


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A few human-readable lines: what the CLI prints and the app shows above the table."""
    return _SUMMARIES[report["analysis"]](report)


# -------------------------------------------------------------------------------- writing
def write_report(report: dict[str, Any], out: str | Path, figures: Sequence[Path] = (),
                 started: float | None = None, *, overwrite: bool = True) -> Path:
    """Write ``out/<analysis>.csv`` and ``out/<analysis>.json`` (with the figure paths); returns the JSON path.

    Files are written whole (temporary name, then rename), so an interrupted save never
    leaves a half-written report over a good one; a run's own files and non-regular files
    are never replaced, and existing report files only with ``overwrite`` (the app asks first,
    the command line needs ``--force``). OS errors become one :class:`OutputError` line.
    """
    out = check_output_folder(out, what="report folder")
    name = report["analysis"]
    header, rows = report_table(report)
    csv_path = out / f"{name}.csv"
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    write_text(csv_path, buf.getvalue(), force=overwrite, what="report table")
    json_path = out / f"{name}.json"
    report["csv"] = str(csv_path)
    report["figures"] = [str(p) for p in figures]
    if started is not None:
        report["seconds_total"] = round(time.perf_counter() - started, 3)
    report["json"] = str(json_path)
    write_text(json_path, json.dumps(report, indent=2) + "\n", force=overwrite, what="report")
    return json_path
