import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

REPO = Path(__file__).resolve().parents[1]
SHARED_MODELS = REPO.parent / "shared" / "models"
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def shared_models() -> Path:
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"the MLPerf Tiny reference models are not at {SHARED_MODELS}")
    return SHARED_MODELS


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, bytes]:
    """The catalogue of tiny int8 models, converted once per session."""
    from tinymodels import catalogue, int8

    return {name: int8(m) for name, m in catalogue().items()}


def needs(tool: str):
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} is not installed (apt-get install it; .ci/run does)")
