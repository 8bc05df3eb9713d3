"""The paper's experiments as plain functions returning plain data (torch only, no Qt).

Each analysis takes ``progress(done, total)`` and ``should_stop()`` callbacks so the app can
run it in a worker with a progress bar and a cancel button; results are dataclasses with
``to_dict()`` (accuracies in percent). The CLI front end is ``python -m st_app analyze``.

- :func:`prefix_sweep` / :func:`tree_sweep`: many sub-nets through a tree of shared prefixes
- :func:`subnet_statistics`: all ordered sub-nets, CT vs ST (figure 5)
- :func:`loafing`: a sub-net trained alone vs inside CT / ST (figure 2)
- :func:`robustness`, :func:`block_importance`: delete / swap blocks (figure 6)
- :func:`compare_methods`: CT, ST, ST++, stochastic depth on one recipe (table 1)
- :func:`path_statistics`: unraveled paths by length (figure 1)
- :func:`loafing_triangle`: each smaller net of a family alone vs inside each bigger one (tables 2-3)
- :mod:`.reports`: the complete, traceable report dicts the CLI and the app both build
  (:func:`loafing_report`, :func:`subnets_report`, :func:`robustness_report`,
  :func:`importance_report`, :func:`compare_report`, :func:`write_report`)
"""

from .common import ExperimentCancelled, check_same_architecture, checkpoint_info
from .compare import CompareReport, compare_methods
from .loafing import FixedPlanTraining, LoafingReport, default_loafing_plans, loafing, recipe_of
from .paths import PathStats, path_statistics
from .prefix_sweep import count_tree_nodes, plan_ops, prefix_sweep, tree_logits, tree_sweep
from .reports import (
    compare_report,
    importance_report,
    loafing_report,
    report_table,
    robustness_report,
    subnets_report,
    summary_lines,
    write_report,
)
from .robustness import (
    RobustnessReport,
    block_importance,
    deletable_blocks,
    delete_one_accuracies,
    draw_deletions,
    draw_swaps,
    max_swaps,
    robustness,
    swappable_pairs,
)
from .subnets import SubnetsReport, SubnetStats, subnet_statistics
from .triangle import loafing_triangle, triangle_report

__all__ = [
    "CompareReport",
    "ExperimentCancelled",
    "FixedPlanTraining",
    "LoafingReport",
    "PathStats",
    "RobustnessReport",
    "SubnetStats",
    "SubnetsReport",
    "block_importance",
    "check_same_architecture",
    "checkpoint_info",
    "compare_methods",
    "compare_report",
    "count_tree_nodes",
    "default_loafing_plans",
    "deletable_blocks",
    "delete_one_accuracies",
    "draw_deletions",
    "draw_swaps",
    "importance_report",
    "loafing",
    "loafing_report",
    "loafing_triangle",
    "max_swaps",
    "path_statistics",
    "plan_ops",
    "prefix_sweep",
    "recipe_of",
    "report_table",
    "robustness",
    "robustness_report",
    "subnet_statistics",
    "subnets_report",
    "summary_lines",
    "swappable_pairs",
    "tree_logits",
    "tree_sweep",
    "triangle_report",
    "write_report",
]
