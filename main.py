#!/usr/bin/env python3
"""Launch ST Lab: ``python main.py`` (see ``python main.py --help``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from st_app.gui.app import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
