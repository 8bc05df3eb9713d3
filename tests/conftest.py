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
