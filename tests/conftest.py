import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True, scope="session")
def _one_thread_per_test_session():
    """Tiny models: a single torch thread is faster and leaves a core free on CI."""
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture
def tiny_model():
    import torch

    from st_app.core.models import build_model

    torch.manual_seed(0)
    return build_model("resnet20", num_classes=10, in_channels=1, image_size=8)


def _rewrite_run_file(run, name, data):
    """Replace one file of a run folder and re-sign manifest.json, as a crafted (not a damaged)
    run folder would be: the loader's own checks, not the checksum, must then catch it."""
    import hashlib
    import json

    path = Path(run) / name
    data = data.encode() if isinstance(data, str) else data
    path.write_bytes(data)
    manifest_path = Path(run) / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        manifest_path.write_text(json.dumps(manifest))


@pytest.fixture
def rewrite_run_file():
    return _rewrite_run_file
