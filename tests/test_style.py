"""The style gate (`make style`, run by .ci/run before the tests): ruff check and snakefmt --check pass, with the
versions pinned in requirements.lock and the configuration in pyproject.toml."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import REPO


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} missing: it comes with the lint extra in requirements.lock (make venv installs it)")
    return found


def test_ruff_check_passes():
    result = subprocess.run([tool("ruff"), "check", "."], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_snakefmt_check_passes():
    result = subprocess.run([tool("snakefmt"), "--check", "."], cwd=REPO, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]


def test_the_gate_is_pinned_configured_and_run_before_the_tests():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    lint = dict(re.fullmatch(r"([a-z-]+)==(\S+)", spec).groups() for spec in
                pyproject["project"]["optional-dependencies"]["lint"])
    lock = (REPO / "requirements.lock").read_text()
    for name, version in lint.items():
        assert re.search(rf"^{name}=={re.escape(version)} \\\n\s+--hash=sha256:", lock, flags=re.M), name
    assert pyproject["tool"]["ruff"]["line-length"] == pyproject["tool"]["snakefmt"]["line_length"] == 120
    assert "--extra lint" in (REPO / "Makefile").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert ci.index("make style") < ci.index("make test")
