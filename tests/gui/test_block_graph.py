"""The block graph on its own: layout, states, menus, keys, drags, deep networks (no weights)."""

from __future__ import annotations

import math

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor

from st_app.core.models import ModelConfig, model_from_config
from st_app.core.plan import SubnetPlan
from st_app.gui.explore.block_graph import BlockGraphView, NetworkInfo, display_order
from st_app.gui.explore.graph_items import BOX_H, BOX_X, IMPORTANCE_FLOOR, NA_COLOR, format_drop, importance_color


def _info(arch: str = "resnet20", granularity: str = "block", **kw) -> NetworkInfo:  # noqa: ANN003
    kw = {"num_classes": 10, "in_channels": 1, "image_size": 8, **kw}
    config = ModelConfig(arch, kw["num_classes"], kw["in_channels"], kw["image_size"], granularity)
    return NetworkInfo.from_model(model_from_config(config, empty=True))  # shapes only: no weights


@pytest.fixture
def view(qtbot) -> BlockGraphView:  # noqa: ANN001
    v = BlockGraphView()
    qtbot.addWidget(v)
    v.resize(1200, 420)
    v.show()
    v.set_network(_info())
    return v


def test_layout_of_resnet20(view) -> None:  # noqa: ANN001
    items = view.block_items()
    assert [i.block for i in items] == list(range(9))
    assert [i.stage for i in items] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # one row, left to right in network order
    xs = [i.pos().x() for i in items]
    assert xs == sorted(xs) and len({i.pos().y() for i in items}) == 1
    # shape-changing blocks are marked
    assert [i.changes_shape for i in items] == [False, False, False, True, False, False, True, False, False]
    assert view.block_item(3).width_label() == "16→32 ↓2"
    assert view.block_item(4).width_label() == "32 ch"
    assert "projection" in view.block_item(3).toolTip()
    info = _info()
    assert info.stage_sizes() == [8, 4, 2]


def test_states_follow_the_plan(view) -> None:  # noqa: ANN001
    layout = view.plan.layout
    plan = SubnetPlan.parse("0,2,1|3|6,7,8", layout)
    view.set_plan(plan, animate=False)
    assert [view.block_item(b).active for b in range(9)] == [True, True, True, True, False, False, True, True, True]
    assert view.block_item(2).moved and view.block_item(1).moved and not view.block_item(0).moved
    assert view.block_item(2).position == 2
    # boxes sit in execution order: 0, 2, 1
    x = {b: view.block_item(b).pos().x() for b in range(3)}
    assert x[0] < x[2] < x[1]
    assert "off" in view.block_item(4).toolTip()
    with pytest.raises(ValueError):
        view.set_plan(_info("resnet32").layout.full_plan())


def test_display_order_slots_dropped_blocks_in_network_order() -> None:
    layout = _info("resnet32").layout  # 5 blocks per stage
    plan = SubnetPlan.parse("0,3,1|5,6,7,8,9|10,11,12,13,14", layout)
    # active blocks keep their execution order; 2 and 4 go before the first higher id
    assert display_order(plan, 0) == [0, 2, 3, 1, 4]
    dropped_entry = SubnetPlan.parse("0,1,2,3,4||10", layout)
    assert display_order(dropped_entry, 1) == [5, 6, 7, 8, 9]


def test_click_emits_block(qtbot, view) -> None:  # noqa: ANN001
    item = view.block_item(5)
    pos = view.mapFromScene(item.scene_box_center())
    with qtbot.waitSignal(view.blockClicked, timeout=1000) as sig:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
    assert sig.args == [5]
    assert view.current_block == 5 and item.current


def test_clicking_wires_does_nothing(qtbot, view) -> None:  # noqa: ANN001
    item = view.block_item(5)
    # the skip arc above the box is not a click target
    above = view.mapFromScene(item.mapToScene(QPointF(60, -26)))
    with qtbot.assertNotEmitted(view.blockClicked):
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, above)


def test_context_menu_states(view) -> None:  # noqa: ANN001
    view.set_plan(SubnetPlan.parse("0,1,2|3,4|6,7,8", view.plan.layout), animate=False)
    texts = lambda b: {a.text(): a.isEnabled() for a in view.build_context_menu(b).actions() if a.text()}  # noqa: E731
    m = texts(5)
    assert m["Restore"] and not m["Delete"] and not m["Move left"] and not m["Move right"]
    m = texts(1)
    assert m["Delete"] and not m["Restore"] and m["Move left"] and m["Move right"]
    assert {"Full network", "Smallest sub-net", "Random ordered sub-net"} <= set(texts(0))


def test_context_menu_action_emits(qtbot, view) -> None:  # noqa: ANN001
    menu = view.build_context_menu(1)
    act = next(a for a in menu.actions() if a.text() == "Move right")
    with qtbot.waitSignal(view.blockActionRequested, timeout=1000) as sig:
        act.trigger()
    assert sig.args == ["move_right", 1]


def test_keyboard_navigation_and_actions(qtbot, view) -> None:  # noqa: ANN001
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.current_block == 0
    qtbot.keyClick(view, Qt.Key.Key_Right)
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.current_block == 2
    qtbot.keyClick(view, Qt.Key.Key_End)
    assert view.current_block == 8
    with qtbot.waitSignal(view.blockActionRequested, timeout=1000) as sig:
        qtbot.keyClick(view, Qt.Key.Key_Space)
    assert sig.args == ["toggle", 8]
    with qtbot.waitSignal(view.blockActionRequested, timeout=1000) as sig:
        qtbot.keyClick(view, Qt.Key.Key_Left, Qt.KeyboardModifier.ControlModifier)
    assert sig.args == ["move_left", 8]


def test_drag_requests_reorder(qtbot, view) -> None:  # noqa: ANN001
    vp = view.viewport()
    start = view.mapFromScene(view.block_item(0).scene_box_center())
    end = view.mapFromScene(view.block_item(2).scene_box_center() + QPointF(25, 0))
    with qtbot.waitSignal(view.blockReordered, timeout=1000) as sig:
        qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
        for k in range(1, 7):
            qtbot.mouseMove(vp, start + (end - start) * (k / 6))
        qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    assert sig.args == [0, 2]
    # nobody applied it: the box snaps back to its slot
    qtbot.waitUntil(lambda: abs(view.block_item(0).pos().x() - view.slot_position(0, 0).x()) < 0.5, timeout=2000)


def test_small_drag_is_a_click(qtbot, view) -> None:  # noqa: ANN001
    vp = view.viewport()
    start = view.mapFromScene(view.block_item(4).scene_box_center())
    with qtbot.waitSignal(view.blockClicked, timeout=1000):
        qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
        qtbot.mouseMove(vp, start + QPointF(1, 0).toPoint())
        qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)


IMAGENET = {"image_size": 224, "in_channels": 3}


@pytest.mark.parametrize("arch,blocks,rows,kw", [
    ("resnet56", 27, 3, {}), ("resnet110", 54, 3, {}), ("resnet50", 16, 2, IMAGENET),
    ("densenet-bc-40", 18, 2, {}), ("densenet121", 58, 4, IMAGENET), ("densenet264", 130, 6, IMAGENET),
    ("vit-micro", 6, 2, {}), ("vit_h_14", 32, 4, IMAGENET)])
@pytest.mark.parametrize("presentation", [False, True])
def test_deep_networks_wrap_into_rows_fit_and_stay_legible(view, arch, blocks, rows, kw,  # noqa: ANN001
                                                            presentation) -> None:
    """A long group (densenet264: 64 layers in one block; vit_h_14: 32 blocks) wraps into rows; fitted
    at the size of the block graph in a 1280x720 window, every box's number shows >= 10 px tall
    (labels grow when the fitted graph is small; 12 px down to resnet110, 10.4 px for densenet264)."""
    view.resize(1230, 380)
    view.set_presentation(presentation)
    view.set_network(_info(arch, **kw))
    items = view.block_items()
    assert len(items) == blocks
    assert len({round(i.pos().y()) for i in items}) == rows
    view.fit()
    # everything visible after fitting
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    assert visible.adjusted(-2, -2, 2, 2).contains(view.scene().itemsBoundingRect())
    assert view.label_px() >= 10, (view.zoom(), view.label_px())
    z = view.zoom()
    view.zoom_in()
    assert view.zoom() == pytest.approx(z * 1.2)
    view.zoom_out()
    assert view.zoom() == pytest.approx(z)


def test_message_when_empty(qtbot) -> None:  # noqa: ANN001
    v = BlockGraphView()
    qtbot.addWidget(v)
    v.set_message("Loading models…")
    assert v.plan is None and not v.block_items()
    v.set_network(_info())
    v.set_presentation(True)
    assert v.presentation


# ---------------------------------------------------------------- block importance (figure 6a)
DROPS = [0.5, 3.0, 1.0, 40.0, 2.0, 1.0, 25.0, 4.0, 0.2]
TITLE = "CT: accuracy lost when the block alone is deleted (BN main)"


def _dark(c: QColor) -> bool:
    return c.lightness() < 90


def test_importance_colours_blocks_by_drop(view) -> None:  # noqa: ANN001
    view.set_importance(DROPS, TITLE)
    assert view.importance == DROPS and view.importance_title == TITLE
    vital, harmless = view.block_item(3), view.block_item(8)
    assert vital.fill_color() == importance_color(40.0, 40.0) == QColor("#800026")
    assert vital.fill_color().lightness() < harmless.fill_color().lightness() - 80
    assert _dark(vital.fill_color()) and harmless.fill_color().lightness() > 200
    # a ramp: more points lost, darker box
    order = sorted(range(9), key=lambda b: DROPS[b])
    light = [view.block_item(b).fill_color().lightness() for b in order]
    assert light == sorted(light, reverse=True)
    # text stays legible: white on the dark box, black on the pale one
    assert vital.text_color() == QColor("#FFFFFF") and harmless.text_color() == QColor("#000000")
    assert "costs 40.0 points of accuracy" in vital.toolTip() and TITLE in vital.toolTip()
    # points lost, as the legend's unit says: a loss is positive, a gain (deleting helped) negative
    assert format_drop(40.0) == "40.0" and format_drop(-0.4) == "-0.4" and format_drop(math.nan) == "n/a"


def test_importance_scale_floor_negative_and_nan(view) -> None:  # noqa: ANN001
    # a net whose blocks barely matter stays pale: the scale reaches at least IMPORTANCE_FLOOR
    tiny = [0.1] * 9
    tiny[4], tiny[5] = -2.0, math.nan
    view.set_importance(tiny)
    assert view.block_item(0).fill_color() == importance_color(0.1, IMPORTANCE_FLOOR)
    assert view.block_item(0).fill_color().lightness() > 200
    assert view.importance_legend().vmax == IMPORTANCE_FLOOR and view.importance_legend().has_na
    assert view.block_item(4).fill_color() == importance_color(0.0, 1.0)  # deleting helped: clamps to 0
    assert "gains 2.0 points" in view.block_item(4).toolTip()
    assert view.block_item(5).fill_color() == QColor(NA_COLOR)
    assert "n/a" in view.block_item(5).toolTip()
    assert math.isnan(view.importance[5])


def test_importance_none_restores_stage_colours(view) -> None:  # noqa: ANN001
    view.set_plan(SubnetPlan.parse("0,1|3,4,5|6,8", view.plan.layout), animate=False)
    before = [i.fill_color() for i in view.block_items()]
    tips = [i.toolTip() for i in view.block_items()]
    view.set_importance(DROPS, TITLE)
    assert [i.fill_color() for i in view.block_items()] != before
    view.set_importance(None)
    assert view.importance is None
    assert [i.fill_color() for i in view.block_items()] == before
    assert [i.toolTip() for i in view.block_items()] == tips


def test_importance_wrong_length_raises(view) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="got 3 values for the 9 blocks"):
        view.set_importance([1.0, 2.0, 3.0])
    assert view.importance is None and not view.importance_legend().isVisible()
    empty = BlockGraphView()
    with pytest.raises(ValueError, match="no network"):
        empty.set_importance(DROPS)
    empty.set_importance(None)  # harmless without a network
    empty.deleteLater()


def test_importance_survives_plan_and_presentation_not_network(view) -> None:  # noqa: ANN001
    view.set_importance(DROPS, TITLE)
    view.set_plan(SubnetPlan.parse("0,1|3,4,5|7,8", view.plan.layout), animate=False)
    assert view.importance == DROPS
    off = view.block_item(6)
    assert not off.active and off.fill_color() == importance_color(25.0, 40.0)  # off keeps its colour
    assert "State: <b>off</b>" in off.toolTip() and "costs 25.0 points" in off.toolTip()
    legend = view.importance_legend()
    width = legend.boundingRect().width()
    view.set_presentation(True)
    assert legend.boundingRect().width() > width  # bigger fonts, wider legend
    assert view.sceneRect().contains(legend.sceneBoundingRect())
    view.set_network(_info("resnet32"))
    assert view.importance is None and not view.importance_legend().isVisible()
    assert all(i.importance is None for i in view.block_items())


@pytest.mark.parametrize("arch", ["resnet20", "resnet56"])
def test_importance_legend_only_while_shown(view, arch) -> None:  # noqa: ANN001
    if arch != "resnet20":
        view.set_network(_info(arch))
    legend = view.importance_legend()
    assert legend is not None and not legend.isVisible()
    assert not view.sceneRect().intersects(legend.sceneBoundingRect())  # takes no room while hidden
    n = len(view.block_items())
    view.set_importance([float(b % 7) for b in range(n)], TITLE)
    assert legend.isVisible() and legend.scene() is view.scene()
    box = legend.sceneBoundingRect()
    assert view.sceneRect().contains(box)
    assert not any(box.intersects(i.sceneBoundingRect()) for i in view.block_items())
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    assert visible.adjusted(-2, -2, 2, 2).contains(box)  # fit() shows it
    view.set_importance(None)
    assert not legend.isVisible()


def test_importance_is_rendered(qtbot, view) -> None:  # noqa: ANN001
    """A real rendering: the most important block's box is painted dark red, a harmless one pale."""
    view.set_importance(DROPS, TITLE)
    qtbot.wait(10)
    img = view.viewport().grab().toImage()

    def pixel(block: int) -> QColor:  # inside the box, left of the centred labels
        p = view.mapFromScene(view.block_item(block).mapToScene(QPointF(BOX_X + 6, BOX_H - 8)))
        return img.pixelColor(p)

    assert abs(pixel(3).red() - 0x80) < 30 and pixel(3).green() < 40 and pixel(3).blue() < 70
    assert min(pixel(8).red(), pixel(8).green()) > 220
    assert pixel(3) != pixel(6) != pixel(8)


# ---------------------------------------------------------------- other families: drawn from the layout
def _drag(qtbot, view, block: int, to: QPointF) -> None:  # noqa: ANN001
    vp = view.viewport()
    start = view.mapFromScene(view.block_item(block).scene_box_center())
    end = view.mapFromScene(to)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    for k in range(1, 9):
        qtbot.mouseMove(vp, start + (end - start) * (k / 8))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)


def test_free_order_drags_a_unit_anywhere_in_its_group_across_rows(qtbot, view) -> None:  # noqa: ANN001
    from st_app.gui.explore.unit_items import TransformerBlockItem

    view.set_network(_info("vit-micro"))
    rows = sorted({round(i.pos().y()) for i in view.block_items()})
    assert len(rows) == 2 and all(isinstance(i, TransformerBlockItem) for i in view.block_items())
    row_of = {b: rows.index(round(view.block_item(b).pos().y())) for b in range(6)}
    assert row_of[0] == 0 and row_of[5] == 1
    target = view.block_item(4)
    with qtbot.waitSignal(view.blockReordered, timeout=1000) as sig:  # down a row, behind block 4
        _drag(qtbot, view, 0, target.scene_box_center() + QPointF(40, 0))
    assert sig.args == [0, 4]
    info = view.info
    assert info is not None and info.group_title(0) == "Encoder" and info.stage_sizes() == [4]


def test_fixed_order_draws_a_bus_keeps_dropped_layers_as_zeros_and_refuses_drags(qtbot, view) -> None:  # noqa: ANN001
    from st_app.gui.explore.unit_items import DenseLayerItem

    info = _info("densenet-bc-22")  # 3 dense blocks of 3 layers, transitions between them
    view.set_network(info)
    assert info.between == ("transition", "transition") and info.tail == ("norm",)
    assert info.stage_sizes() == [8, 4, 2] and info.group_channels(0) == (24, 60)
    items = view.block_items()
    assert all(isinstance(i, DenseLayerItem) for i in items)
    assert items[0].width_label() == "+12 ch" and items[0].bus == (24, 60)
    plan = SubnetPlan.parse("0,2|3,4,5|6", info.layout)  # layer 1 dropped in the middle of its block
    view.set_plan(plan, animate=False)
    x = [view.block_item(b).pos().x() for b in range(3)]
    assert x == sorted(x)  # a dropped layer keeps its place (its channels are still there, as zeros)
    off = view.block_item(1)
    assert not off.active and off.status_text() == "zeros" and "zeros" in off.toolTip()
    assert off.fill_color() != view.block_item(0).fill_color()  # greyed
    refused: list[str] = []
    view.orderRefused.connect(refused.append)
    with qtbot.assertNotEmitted(view.blockReordered), qtbot.assertNotEmitted(view.blockClicked):
        _drag(qtbot, view, 2, view.block_item(0).scene_box_center())
    assert len(refused) == 1 and info.layout.order_rule in refused[0]
    assert view.block_item(2).pos().x() == x[2]  # it never moved
    titles = [a.text() for a in view.build_context_menu(4).actions()]
    assert titles[0].startswith("Layer 4 · Dense block 2")
