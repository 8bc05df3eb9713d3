"""Guard against a reference-counting bug of some PySide6 builds on Python < 3.12.

PySide6 6.12.0 on CPython 3.11 returns ``None`` from every void C++ call (``setPen``,
``drawLine``, ``setText``...) and from null pointers without taking a new reference, so each
such call *decrements* None's reference count. A GUI makes thousands of these calls per
second; after a few thousand the count reaches zero and the interpreter aborts with
"Fatal Python error: none_dealloc". From Python 3.12 on None is immortal and the bug is
harmless. We detect the bug with a probe and, only when it is present, give None a huge
reference count, which is what 3.12 does by design: None is never deallocated anyway.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["keep_none_alive", "none_leak_detected"]

# Shared with any other copy of this guard in the process (one application is enough).
_FLAG = "_st_lab_singletons_kept"


def none_leak_detected() -> bool:
    """True when PySide6 void calls drop a reference to None (probe: 16 calls)."""
    from PySide6.QtCore import QPointF

    point = QPointF()
    before = sys.getrefcount(None)
    for _ in range(16):
        point.setX(0.0)
    return sys.getrefcount(None) < before - 8


def keep_none_alive() -> bool:
    """Make None effectively immortal if (and only if) this PySide6 build leaks it."""
    if getattr(sys, _FLAG, False):
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    if not none_leak_detected():
        return False
    # ob_refcnt is the first field of every CPython object (non-debug builds). True and
    # False get the same margin in case other calls return them without a reference.
    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += 1 << 40
    setattr(sys, _FLAG, True)
    return True
