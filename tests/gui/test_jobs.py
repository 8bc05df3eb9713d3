"""The one background-job pattern: results, yields, errors, cancel, lanes, and GC kept in the GUI thread."""

from __future__ import annotations

import gc
import threading
import time

from st_app.gui.jobs import JobCancelled, run_in_thread


def test_generator_yields_return_and_plain_errors(qtbot) -> None:  # noqa: ANN001
    seen: list = []

    def count(n: int):  # noqa: ANN202
        yield from range(n)
        return "done"

    job = run_in_thread(count, 3, connect={"yielded": seen.append})
    with qtbot.waitSignal(job.returned, timeout=5000) as sig:
        pass
    assert seen == [0, 1, 2] and sig.args == ["done"] and job.outcome == "returned"
    bad = run_in_thread(lambda: {}["missing"])
    with qtbot.waitSignal(bad.errored, timeout=5000) as err:
        pass
    assert isinstance(err.args[0], KeyError) and "KeyError" in bad.traceback


def test_cancel_stops_between_units_and_a_queued_job_never_runs(qtbot) -> None:  # noqa: ANN001
    started = threading.Event()
    ran: list[str] = []

    def long(job) -> None:  # noqa: ANN001
        started.set()
        while True:
            job.check()
            time.sleep(0.005)

    first = run_in_thread(long, lane="test-lane", with_job=True)
    second = run_in_thread(lambda: ran.append("second"), lane="test-lane")
    assert started.wait(5)
    second.cancel()
    with qtbot.waitSignal(first.cancelled, timeout=5000):
        first.cancel()
    qtbot.waitUntil(lambda: second.outcome == "cancelled", timeout=5000)
    assert ran == [] and first.outcome == "cancelled"
    assert issubclass(JobCancelled, Exception)


def test_garbage_is_collected_in_the_gui_thread_only(qtbot) -> None:  # noqa: ANN001
    run_in_thread(lambda: None)
    assert not gc.isenabled()  # a worker never runs the collector (and never destroys Qt objects)
    threads: list[str] = []

    class Cycle:
        def __del__(self) -> None:
            threads.append(threading.current_thread().name)

    c = Cycle()
    c.self = c  # type: ignore[attr-defined]
    del c
    qtbot.waitUntil(lambda: bool(threads) or not gc.collect(0) and bool(threads), timeout=5000)
    assert threads == [threading.main_thread().name]
