"""Plain-words help: the ideas behind the app, the paper, and the About box."""

from __future__ import annotations

import platform

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QTextBrowser, QWidget

from st_app import __version__

__all__ = ["HELP_HTML", "PAPER_REFERENCE", "HelpBrowser", "about_text", "show_about"]

PAPER_REFERENCE = (
    "Ye, Tang, Li, Chen and Ouyang (Ye et al.). "
    "<i>Stimulative Training of Residual Networks: A Social Psychology Perspective of Loafing.</i> "
    "NeurIPS 2022. arXiv:2210.04153"
)
PAPER_URL = "https://arxiv.org/abs/2210.04153"

HELP_HTML = f"""
<h2>ST Lab in plain words</h2>

<h3>The unraveled view</h3>
<p>A residual block computes <tt>x + f(x)</tt>: its input goes both <b>through</b> the block's
branch <tt>f</tt> and <b>around</b> it on the skip connection (the arc over each box). Follow the
signal from input to output and at every block it either takes the branch or skips it, so a
network with <i>k</i> active blocks is like a team of <b>2<sup>k</sup> paths</b> of different
lengths working together. Any subset of blocks is itself a working, shallower
<b>sub-network</b>.</p>

<h3>Playing with sub-networks</h3>
<ul>
<li><b>Click</b> a block to switch its branch off (grey, dashed) or back on.</li>
<li><b>Drag</b> a block sideways, or use <b>Move left/right</b> (right-click, or Ctrl+←/→), to
change the order of blocks inside a stage. Only blocks of identical shape may trade places.</li>
<li>The first block of a stage changes the shape (e.g. <tt>16→32 ↓2</tt>). Its shortcut is a
1×1 projection, which keeps running even when the block is off.</li>
<li>The plan text (<tt>0,1|3,4,5|6</tt>) lists, per stage, the blocks that run in order; type one
and press Enter. <b>Ctrl+Z</b> undoes any edit.</li>
</ul>

<h3>Network loafing</h3>
<p>In a conventionally trained (<b>CT</b>) residual network, a sub-network evaluated <i>inside</i>
the big network is much worse than the same architecture trained alone, and the deeper the
network the worse it gets. Like people in a group who put in less effort than when working
alone, each sub-network "loafs" and relies on the others.</p>

<h3>Stimulative training</h3>
<p><b>ST</b> fights loafing: at every training step the full network learns from the labels as
usual, and additionally one randomly sampled <i>ordered</i> sub-network (each stage keeps its
first few blocks) is trained to match the full network's predictions (a KL-divergence loss,
the full network acting as teacher). Every sub-network must pull its weight, so sub-networks
stay strong and the full network usually gets better too. Compare the two numbers after a few
clicks: with CT the accuracy collapses quickly; with ST it degrades gracefully.</p>

<h3>The BatchNorm switch</h3>
<p>BatchNorm layers normalise with running statistics collected during training.
<b>Main network</b> (the paper's setting) evaluates a sub-network with the statistics of the
<i>full</i> network, as it really sits inside it. <b>Recalibrated</b> re-estimates the
statistics on 1000 training images for this sub-network alone. Recalibration fixes the
statistics but not the weights, so the gap between the two numbers tells how much of a drop
comes from mismatched statistics and how much from the weights themselves.</p>

<h3>Numbers on screen</h3>
<p><b>Blocks used</b>, <b>parameters</b> and <b>multiply-adds</b> describe the sub-network's
cost; <b>paths</b> is 2<sup>k</sup> and the small bar chart shows how many paths pass through
ℓ of the k branches (a binomial: most paths have medium length).</p>

<h3>Training</h3>
<p>The <b>Train</b> tab trains CT and ST side by side on the same data and seed and plots
them live, including the current plan. <i>Help → Loafing in one minute</i> runs a short
guided demonstration and loads the results here.</p>

<h3>Analyses</h3>
<p>The <b>Analyses</b> tab runs the paper's experiments on the loaded CT and ST models, each
with a progress bar and Cancel, and saves JSON, CSV and PNG/SVG figures (the same report as
<tt>python -m st_app analyze</tt>):</p>
<ul>
<li><b>Loafing</b>: a sub-network trained alone versus the same sub-network inside CT and ST;
in <i>triangle</i> mode, runs of several sizes: each smaller net alone versus inside each bigger one.</li>
<li><b>All sub-networks</b>: every ordered sub-network, sorted and as a distribution.</li>
<li><b>Robustness</b>: delete one block, delete k random blocks, swap k pairs.</li>
<li><b>Block importance</b>: how much accuracy each block carries. <i>Colour blocks</i> in the
toolbar paints it onto the graph: in a CT net a few blocks carry the load, ST spreads it.</li>
<li><b>Method comparison</b>: table 1's seven methods (CT, layer and stage supervision,
self-distillation, stochastic depth, ST, ST++) trained on one recipe.</li>
<li><b>Depth sweep</b>: CT and ST trained at several depths (runs reused from a folder): does
loafing grow with depth? Open any depth's runs in the Explore tab.</li>
</ul>

<h3>Reference</h3>
<p>{PAPER_REFERENCE}. <a href="{PAPER_URL}">{PAPER_URL}</a></p>
<p>See also: A. Veit, M. Wilber, S. Belongie, <i>Residual Networks Behave Like Ensembles of
Relatively Shallow Networks</i>, NeurIPS 2016; G. Huang et al., <i>Deep Networks with
Stochastic Depth</i>, ECCV 2016.</p>
"""


class HelpBrowser(QTextBrowser):
    """The help text, readable beside the graph (lives in a dock)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenExternalLinks(True)
        self.setHtml(HELP_HTML)
        self.setToolTip("What the unraveled view, loafing, ST and the BN switch mean")
        self.setMinimumWidth(320)


def about_text() -> str:
    import PySide6

    try:
        import torch

        torch_version = str(torch.__version__)
    except Exception:  # noqa: BLE001 - the About box must open whatever happens
        torch_version = "not available"
    return (
        f"<h3>ST Lab {__version__}</h3>"
        "<p>Explore residual networks as ensembles of sub-networks: network loafing, and "
        "stimulative training (ST) versus common training (CT).</p>"
        f"<p>Based on: {PAPER_REFERENCE}.<br><a href='{PAPER_URL}'>{PAPER_URL}</a></p>"
        f"<p style='color:#6B7280'>Python {platform.python_version()} · PyTorch {torch_version} · "
        f"PySide6 {PySide6.__version__}</p>"
    )


def show_about(parent: QWidget) -> None:
    box = QMessageBox(parent)
    box.setWindowTitle("About ST Lab")
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(about_text())
    box.setIcon(QMessageBox.Icon.Information)
    box.exec()
