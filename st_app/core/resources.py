"""Where the bundled files live: the bundled digits, demo checkpoints and example sessions.

The repository keeps them in a top-level ``resources/`` folder; an installed wheel carries the
same folder as ``st_app/resources`` (setup.py maps it). Both layouts resolve here, so no other
module needs to know which one it runs from.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["RESOURCES", "resource_path"]


def _find_resources() -> Path:
    package = Path(__file__).resolve().parent.parent  # .../st_app
    for candidate in (package / "resources", package.parent / "resources"):
        if (candidate / "digits").is_dir():
            return candidate
    return package / "resources"  # missing: callers' errors name this path


RESOURCES = _find_resources()


def resource_path(*parts: str) -> Path:
    """A path inside the bundled resources (it may not exist; callers check)."""
    return RESOURCES.joinpath(*parts)
