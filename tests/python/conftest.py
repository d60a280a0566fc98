"""Shared fixtures for the mca-convert interop tests.

The tests drive the built binary. Its build directory comes from MCACONV_BUILD_DIR (default:
<repo>/build); a missing binary fails every test that needs it, loudly, instead of skipping.
"""

import os
import pathlib
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY_LLAMA = REPO_ROOT / "tests" / "data" / "tiny-llama"
CONVERT_TIMEOUT_S = 600

# The helpers in models.py are imported as `import models` from any test file.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _build_dir() -> pathlib.Path:
    configured = os.environ.get("MCACONV_BUILD_DIR")
    if not configured:
        return REPO_ROOT / "build"
    path = pathlib.Path(configured)
    return path if path.is_absolute() else REPO_ROOT / path


@pytest.fixture(scope="session")
def mca_convert() -> pathlib.Path:
    """Path of the mca-convert binary under test."""
    binary = _build_dir() / "mca-convert"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"mca-convert not found at {binary}: build it first (tools/test-all.sh) or set "
                    f"MCACONV_BUILD_DIR", pytrace=False)
    return binary


@pytest.fixture
def run_convert(mca_convert):
    """run_convert(*args, expect_rc=0) runs mca-convert and asserts its exit code.

    Arguments may be str, Path or numbers. Returns the CompletedProcess (text stdout/stderr).
    With expect_rc=None any exit code is accepted.
    """

    def run(*args, expect_rc=0, timeout=CONVERT_TIMEOUT_S):
        command = [str(mca_convert), *map(str, args)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if expect_rc is not None and result.returncode != expect_rc:
            pytest.fail(
                f"{' '.join(command)}\nexit code {result.returncode}, expected {expect_rc}\n"
                f"--- stdout (last 4000 chars) ---\n{result.stdout[-4000:]}\n"
                f"--- stderr (last 4000 chars) ---\n{result.stderr[-4000:]}",
                pytrace=False)
        return result

    return run


@pytest.fixture
def tiny_llama() -> pathlib.Path:
    """The shipped bf16 tiny Llama (made by tools/make_tiny_model.py); never write into it."""
    return TINY_LLAMA


@pytest.fixture
def hf_dir(tmp_path) -> pathlib.Path:
    """Where an HF checkpoint goes (not created: writers create it)."""
    return tmp_path / "hf"


@pytest.fixture
def mca_dir(tmp_path) -> pathlib.Path:
    """Where an MCA checkpoint goes (not created)."""
    return tmp_path / "mca"


@pytest.fixture
def back_dir(tmp_path) -> pathlib.Path:
    """Where the HF checkpoint converted back from MCA goes (not created)."""
    return tmp_path / "hf-back"
