"""The README's walkthrough numbers are generated, and they are what the app's cards show."""

from __future__ import annotations

from pathlib import Path

import pytest

from st_app.core.resources import resource_path
from st_app.walkthrough import BEGIN, END, walkthrough_markdown, walkthrough_numbers

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def numbers() -> dict:
    return walkthrough_numbers()


def test_the_readme_holds_the_generated_walkthrough(numbers) -> None:  # noqa: ANN001
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert section == walkthrough_markdown(numbers), "run: python -m st_app.walkthrough --write README.md"


def test_the_app_shows_the_walkthrough_numbers(qtbot, make_window, numbers) -> None:  # noqa: ANN001
    from st_app.gui.file_ops import DEFAULT_CHECKPOINTS

    win = make_window(DEFAULT_CHECKPOINTS["ct"], DEFAULT_CHECKPOINTS["st"])

    def shown(slot: str) -> str:
        return win.cards[slot].value.text()

    for slot in ("ct", "st"):
        assert shown(slot) == f"{numbers[slot]['full']:.1f} %"
    # step 2, through the session file the README names (it opens on the smallest sub-net)
    assert win.files.open_session(resource_path("sessions", "loafing-lesson.stlab"))
    assert win.plan_text() == "0|3|6"
    qtbot.waitUntil(win.wait_for_accuracy, timeout=15000)
    for slot in ("ct", "st"):
        assert shown(slot) == f"{numbers[slot]['smallest_main']:.1f} %"
    # step 4
    win.set_bn_mode("recalibrate")
    qtbot.waitUntil(win.wait_for_accuracy, timeout=30000)
    for slot in ("ct", "st"):
        assert shown(slot) == f"{numbers[slot]['smallest_recalibrated']:.1f} %"
