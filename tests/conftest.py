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
def portless_board(tmp_path_factory) -> str:
    """A user's board file for a part tinygen has no firmware port for (the NUCLEO-L4R5ZI's
    figures, another family): what such a board gets is the model, the fit report and aot/."""
    text = (REPO / "boards" / "nucleo-l4r5zi.toml").read_text()
    text = text.replace('id = "nucleo-l4r5zi"', 'id = "my-board"').replace('family = "stm32l4"', 'family = "myfamily"')
    assert 'family = "myfamily"' in text
    path = tmp_path_factory.mktemp("boards") / "my-board.toml"
    path.write_text(text)
    return str(path)


def pytest_configure(config):
    from tinymodels import seed

    try:
        seed()
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None


def pytest_report_header(config):
    from tinymodels import seed

    return f"tiny models: weights seeded with TINYGEN_SEED={seed()}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failure in a test that used the tiny models says which weights they had."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "tiny_models" in getattr(item, "fixturenames", ()):
        from tinymodels import seed

        report.sections.append(("tiny models", f"weights seeded with TINYGEN_SEED={seed()}; run again with "
                                               f"TINYGEN_SEED={seed()} to get the same models"))


@pytest.fixture(scope="session")
def tiny_models() -> dict[str, bytes]:
    """The catalogue of tiny int8 models, converted once per session."""
    from tinymodels import catalogue, int8

    return {name: int8(m) for name, m in catalogue().items()}


def needs(tool: str):
    return pytest.mark.skipif(shutil.which(tool) is None, reason=f"{tool} is not installed (apt-get install it; .ci/run does)")
