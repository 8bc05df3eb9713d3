"""The block graph on its own: layout, states, menus, keys, drags, deep networks (no weights)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF, Qt

from st_app.core.models import build_model
from st_app.core.plan import SubnetPlan
from st_app.gui.block_graph import BlockGraphView, NetworkInfo, display_order


def _info(arch: str = "resnet20", **kw) -> NetworkInfo:  # noqa: ANN003
    kw = {"num_classes": 10, "in_channels": 1, "image_size": 8, **kw}
    return NetworkInfo.from_model(build_model(arch, **kw))


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
    qtbot.waitUntil(lambda: abs(view.block_item(0).pos().x() - view._slots[0][0].x()) < 0.5, timeout=2000)


def test_small_drag_is_a_click(qtbot, view) -> None:  # noqa: ANN001
    vp = view.viewport()
    start = view.mapFromScene(view.block_item(4).scene_box_center())
    with qtbot.waitSignal(view.blockClicked, timeout=1000):
        qtbot.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
        qtbot.mouseMove(vp, start + QPointF(1, 0).toPoint())
        qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)


@pytest.mark.parametrize("arch,blocks,rows", [("resnet56", 27, 3), ("resnet110", 54, 6), ("resnet50", 16, 4)])
def test_deep_networks_wrap_into_rows_and_fit(view, arch, blocks, rows) -> None:  # noqa: ANN001
    kw = {"image_size": 32, "in_channels": 3} if arch == "resnet50" else {}
    view.set_network(_info(arch, **kw))
    items = view.block_items()
    assert len(items) == blocks
    assert len({round(i.pos().y()) for i in items}) == rows
    view.fit()
    # everything visible after fitting
    visible = view.mapToScene(view.viewport().rect()).boundingRect()
    assert visible.adjusted(-2, -2, 2, 2).contains(view.scene().itemsBoundingRect())
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
    assert v._look.line > 2
