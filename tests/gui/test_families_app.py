"""The app on every model family: the bundled vit-micro pair and a tiny DenseNet-BC pair.

Each Explore feature a user reaches for (open, click, delete, permute where the family allows
it, instant accuracy in both BN settings, block-importance colouring, ONNX export of the
current sub-net, undo/redo, session save/open) is driven through the window, and what it shows
is checked against the engine.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QFileDialog, QMessageBox

from st_app.core.resources import resource_path
from st_app.gui.explore.accuracy import NO_RUNNING_STATS
from st_app.gui.explore.graph_items import BlockItem
from st_app.gui.explore.unit_items import DenseLayerItem, TransformerBlockItem

VIT = {"ct": resource_path("checkpoints", "digits-vit-micro-ct"), "st": resource_path("checkpoints", "digits-vit-micro-st")}


@pytest.fixture(params=["vit", "dense"])
def family_window(request, make_window, dense_runs):  # noqa: ANN001, ANN201
    runs = VIT if request.param == "vit" else dense_runs
    win = make_window(runs["ct"], runs["st"])
    return request.param, win


def _click(qtbot, win, unit: int, at: QPointF | None = None) -> None:  # noqa: ANN001
    view = win.graph
    item = view.block_item(unit)
    view.ensureVisible(item)
    pos = view.mapFromScene(at if at is not None else item.scene_box_center())
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)


def _drag(qtbot, win, unit: int, to: QPointF) -> None:  # noqa: ANN001
    view, vp = win.graph, win.graph.viewport()
    start = view.mapFromScene(view.block_item(unit).scene_box_center())
    end = view.mapFromScene(to)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for k in range(1, 9):
        qtbot.mouseMove(vp, start + (end - start) * (k / 8))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def _engine_accuracy(win, slot: str) -> float:  # noqa: ANN001
    from st_app.core.evaluate import accuracy

    state = win.session.slot(slot)
    return accuracy(state.model, win.plan, state.data.test_x, state.data.test_y)


def test_file_open_example_loads_the_vit_pair(qtbot, make_window) -> None:  # noqa: ANN001
    """File -> Open example: "does a transformer loaf?" offline in one click."""
    win = make_window()
    assert "digits-vit-micro" in win.act_examples and "digits-resnet20" in win.act_examples
    act = win.act_examples["digits-vit-micro"]
    assert "vit-micro" in act.text() and "offline" in act.toolTip()
    act.trigger()
    qtbot.waitUntil(win.wait_for_accuracy, timeout=20000)
    assert win.windowTitle() == "vit-micro on digits"
    assert win.plan_text() == "0,1,2,3,4,5"
    items = win.graph.block_items()
    assert len(items) == 6 and all(isinstance(i, TransformerBlockItem) for i in items)
    assert "attention" in items[0].toolTip() and "MLP" in items[0].toolTip()
    panel = win.plan_panel
    assert panel.keys["blocks"].text() == "Blocks used" and panel.values["blocks"].text() == "6 of 6"
    assert panel.values["paths"].text().startswith("2^12 = 4,096")  # two residual branches per block
    assert panel.path_rule.text() == win.plan.layout.path_rule
    # LayerNorm keeps no running statistics: both BN settings are the same number, and the app says so
    assert "no BatchNorm" in win.accuracy_panel.bn_note.text()
    _click(qtbot, win, 2)
    qtbot.waitUntil(win.wait_for_accuracy, timeout=10000)
    main = {s: win.cards[s].accuracy for s in ("ct", "st")}
    win.set_bn_mode("recalibrate")
    qtbot.waitUntil(win.wait_for_accuracy, timeout=10000)
    for slot in ("ct", "st"):
        assert win.cards[slot].accuracy == main[slot]
        assert win.cards[slot].detail.text() == NO_RUNNING_STATS
    win.files.open_example("digits-resnet20")  # back to a BatchNorm net: the note goes
    qtbot.waitUntil(win.wait_for_accuracy, timeout=20000)
    assert not win.accuracy_panel.bn_note.text() and len(win.graph.block_items()) == 9


def test_every_explore_feature_on_each_family(qtbot, family_window, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    family, win = family_window
    layout = win.plan.layout
    n = layout.num_blocks
    kind = TransformerBlockItem if family == "vit" else DenseLayerItem
    assert all(isinstance(i, kind) for i in win.graph.block_items()) and len(win.graph.block_items()) == n

    # click: a unit off; the cards show exactly what the engine computes
    _click(qtbot, win, 1)
    assert 1 not in win.plan.blocks and not win.graph.block_item(1).active
    qtbot.waitUntil(win.wait_for_accuracy, timeout=15000)
    for slot in ("ct", "st"):
        n_test = len(win.session.slot(slot).data.test_y)
        assert win.cards[slot].accuracy == pytest.approx(_engine_accuracy(win, slot), abs=100 / n_test + 1e-6)
    unit = layout.unit_name
    assert f"Turn {unit} 1 off" in win.statusBar().currentMessage()
    assert win.plan_panel.values["blocks"].text() == f"{n - 1} of {n}"
    assert win.plan_panel.values["paths"].text().startswith(f"2^{win.plan.num_branches} ")

    # delete a unit in the middle of its group; permute where the family allows it
    assert win.block_action("delete", 4)
    if family == "vit":  # any block anywhere: drag block 0 behind block 3
        target = win.graph.block_item(3)
        _drag(qtbot, win, 0, target.scene_box_center() + QPointF(40, 0))
        assert win.plan_text() == "2,3,0,5"
        assert win.graph.block_item(0).moved
    else:  # a dense layer's channels are at fixed positions: no move, and the graph says why
        assert win.graph.block_item(4).status_text() == "zeros"
        menu = {a.text(): a for a in win.graph.build_context_menu(2).actions()}
        assert not menu["Move left"].isEnabled() and "permuted" in menu["Move left"].toolTip()
        before = win.plan_text()
        _drag(qtbot, win, 2, win.graph.block_item(0).scene_box_center())
        assert win.plan_text() == before
        message = win.statusBar().currentMessage()
        assert "cannot be dragged" in message and layout.order_rule in message
    edited = win.plan_text()

    # undo back to the first edit, redo to the last
    stack = win.session.undo_stack
    edits = stack.index()
    for _ in range(edits - 1):
        win.act_undo.trigger()
    assert 4 in win.plan.blocks and 1 not in win.plan.blocks and win.plan.is_ordered is False
    for _ in range(edits - 1):
        win.act_redo.trigger()
    assert win.plan_text() == edited

    # both BN settings give exact values (equal for the transformer)
    qtbot.waitUntil(win.wait_for_accuracy, timeout=15000)
    main = win.cards["ct"].accuracy
    win.set_bn_mode("recalibrate")
    qtbot.waitUntil(win.wait_for_accuracy, timeout=20000)
    assert (win.cards["ct"].accuracy == main) == (family == "vit")
    win.set_bn_mode("main")

    # block importance colouring: one value per unit, measured on first use
    assert win.set_colour_mode("ct")
    qtbot.waitUntil(lambda: win.graph.importance is not None, timeout=30000)
    assert len(win.graph.importance) == n
    assert win.graph.importance_legend().isVisible()
    win.set_colour_mode("stage")
    assert win.graph.importance is None

    # ONNX export of the current sub-net, verified in onnxruntime
    out = tmp_path / "subnet.onnx"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(out), "")))
    infos: list = []
    errors: list = []
    monkeypatch.setattr(QMessageBox, "information", staticmethod(lambda *a: infos.append(a[2])))
    monkeypatch.setattr(QMessageBox, "critical", staticmethod(lambda *a: errors.append(a[2])))
    win.act_onnx["st"].trigger()
    assert not errors, errors
    assert out.stat().st_size > 1000 and len(infos) == 1 and edited in infos[0] and "agreement 100.0 %" in infos[0]

    # session save and open: plan, history and models come back
    assert win.files.save_session(tmp_path / "lesson")
    from st_app.gui.main_window import MainWindow

    again = MainWindow(session_path=tmp_path / "lesson.stlab", settings=win.settings, enable_training=False)
    qtbot.addWidget(again)
    again.show()
    qtbot.waitUntil(again.wait_for_accuracy, timeout=20000)
    assert again.plan_text() == edited and again.session.undo_stack.count() == win.session.undo_stack.count()
    assert type(again.graph.block_item(0)) is kind
    again.close()


def test_vit_analyses_run_on_the_bundled_pair(qtbot, make_window) -> None:  # noqa: ANN001
    """All sub-nets, robustness and importance on the transformer (its space: 6 ordered sub-nets)."""
    win = make_window(VIT["ct"], VIT["st"])
    panel = win.analyses
    with qtbot.waitSignal(panel.reportReady, timeout=60000) as sig:
        assert panel.run("subnets", bn="main")
    assert sig.args[1]["n_plans"] == 6
    with qtbot.waitSignal(panel.reportReady, timeout=60000) as sig:
        assert panel.run("robustness", max_k=2, repeats=2, max_swaps=1)
    assert len(sig.args[1]["delete_one"]["ct"]) == 6
    qtbot.waitUntil(lambda: panel.running is None, timeout=10000)
    with qtbot.waitSignal(panel.reportReady, timeout=60000) as sig:
        assert panel.run("importance")
    assert len(sig.args[1]["importance"]["st"]) == 6


def test_vit_half_granularity_draws_each_half_as_a_unit(qtbot, make_window, tmp_path) -> None:  # noqa: ANN001
    """``--vit-granularity half``: units 2i (attention) and 2i+1 (MLP), each its own residual unit."""
    from st_app.core.checkpoint import load_checkpoint, save_checkpoint
    from st_app.core.models import build_model

    ck = load_checkpoint(VIT["ct"])
    model = build_model("vit-micro", num_classes=10, in_channels=1, image_size=8, granularity="half")
    model.load_state_dict(ck.model.state_dict())
    save_checkpoint(tmp_path / "halves", model, dict(ck.meta, config=dict(ck.meta["config"], granularity="half")))
    win = make_window(VIT["ct"], VIT["st"], wait=False)
    assert win.open_checkpoint(tmp_path / "halves", "ct")
    assert "st" not in win.session.slots  # another layout: the block-unit ST model is unloaded
    items = win.graph.block_items()
    assert len(items) == 12 and all(type(i) is BlockItem for i in items)
    assert [i.width_label() for i in items[:2]] == ["attention", "MLP"]
    assert win.plan_panel.keys["blocks"].text() == "Halves used"
    assert win.plan_panel.values["paths"].text().startswith("2^12 ")  # one branch per half
