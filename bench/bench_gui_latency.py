"""Edit -> accuracy-label latency of the Explore tab (a benchmark, not a test).

Loads the default models (the bundled digits resnet20 CT/ST checkpoints; if they are not
installed, two 1-epoch runs trained into a temporary folder), then performs random edits by
clicking blocks with real mouse events on the graph view (the same code path as a user's
click), and measures the time from the click until *both* accuracy labels show the final
value for the new plan. Prints the median and the 90th percentile (target: median <= 100 ms
on 2 CPU cores).

    QT_QPA_PLATFORM=offscreen PYTHONPATH=. python bench/bench_gui_latency.py [--edits 30] [--bn main]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _default_runs(tmp: Path) -> tuple[Path, Path]:
    from st_app.gui.main_window import DEFAULT_CHECKPOINTS

    if all((p / "model.safetensors").exists() for p in DEFAULT_CHECKPOINTS.values()):
        return DEFAULT_CHECKPOINTS["ct"], DEFAULT_CHECKPOINTS["st"]
    from st_app.core.train import TrainConfig, Trainer

    print("bundled checkpoints not found: training two 1-epoch runs", file=sys.stderr)
    out = []
    for method in ("ct", "st"):
        Trainer(TrainConfig(method=method, epochs=1), out_dir=tmp / method).run()
        out.append(tmp / method)
    return out[0], out[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edits", type=int, default=30)
    ap.add_argument("--bn", choices=("main", "recalibrate"), default="main")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for one edit")
    args = ap.parse_args()

    from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer
    from PySide6.QtTest import QTest

    from st_app.gui.app import configure_torch_threads, create_app

    configure_torch_threads()  # as the app does at start-up
    app = create_app()
    tmp = Path(tempfile.mkdtemp(prefix="st-lab-bench-"))
    ct, st = _default_runs(tmp)
    from st_app.gui.main_window import MainWindow

    settings = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
    win = MainWindow(ct, st, settings=settings, enable_training=False)
    win.resize(1400, 900)
    win.show()
    win.set_bn_mode(args.bn)

    def wait_until(pred, timeout: float) -> bool:  # noqa: ANN001
        """Run the real event loop (idle waits in C++, like the app) until pred() holds."""
        if pred():
            return True
        loop = QEventLoop()
        poll = QTimer()
        poll.setInterval(1)
        poll.timeout.connect(lambda: loop.quit() if pred() else None)
        QTimer.singleShot(int(timeout * 1000), loop.quit)
        conn = win.accuracyShown.connect(lambda *_: loop.quit() if pred() else None)
        poll.start()
        loop.exec()
        poll.stop()
        win.accuracyShown.disconnect(conn)
        return pred()

    if not wait_until(win.wait_for_accuracy, 30):
        print("models did not finish loading", file=sys.stderr)
        return 1

    done: dict[str, float] = {}  # slot -> time its label showed the final value
    first: dict[str, float] = {}  # slot -> time its label first showed a value (estimate or final)

    def shown(slot: str, final: bool) -> None:
        now = time.perf_counter()
        first.setdefault(slot, now)
        if final:
            done[slot] = now

    win.accuracyShown.connect(shown)
    rng = random.Random(args.seed)
    view = win.graph
    latencies, firsts, cached = [], [], 0
    for i in range(args.edits):
        plan = win.plan
        # click a random block whose toggle is allowed (every block is, for ordered nets)
        block = rng.randrange(plan.layout.num_blocks)
        item = view.block_item(block)
        view.ensureVisible(item)
        app.processEvents()
        pos = view.mapFromScene(item.scene_box_center())
        done.clear()
        first.clear()
        before = win.plan
        t0 = time.perf_counter()
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
        if win.plan == before:
            print(f"edit {i}: click on block {block} did not change the plan", file=sys.stderr)
            continue
        ok = wait_until(lambda: win.wait_for_accuracy() and len(done) == 2, args.timeout)
        if not ok:
            print(f"edit {i}: no accuracy within {args.timeout} s", file=sys.stderr)
            continue
        t1 = max(done.values())
        latencies.append(1000 * (t1 - t0))
        firsts.append(1000 * (max(first.values()) - t0))
        cached += int(1000 * (t1 - t0) < 3)
        # let trailing work (FLOPs, animations) settle as a user's pause between clicks would
        wait_until(lambda: False, 0.25)

    win.close()
    if not latencies:
        print("no measurements", file=sys.stderr)
        return 1
    def p90(values: list[float]) -> float:
        values = sorted(values)
        return values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]

    print(f"edits measured: {len(latencies)} (bn={args.bn}, {cached} answered from cache)")
    print(f"edit -> both accuracy labels updated: median {statistics.median(latencies):.1f} ms, "
          f"p90 {p90(latencies):.1f} ms, min {min(latencies):.1f} ms, max {max(latencies):.1f} ms")
    if args.bn == "recalibrate":
        print(f"edit -> first estimate on both labels: median {statistics.median(firsts):.1f} ms, "
              f"p90 {p90(firsts):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
