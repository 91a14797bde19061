"""What every artifact records about how it was made: seed, config hash, model hash, code version."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
from pathlib import Path

from caibase import REPO_ROOT, __version__


def config_sha256(config: dict) -> str:
    """Hash of the validated config, independent of key order."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# Tracked files the pipeline itself writes (DVC metrics, the reference paper's generated parts): a run changing them
# does not make the code it runs dirty.
PIPELINE_OUTPUTS = ("results", "paper/generated", "paper/published.json", "dvc.lock")


@functools.cache
def code_version(repo: Path = REPO_ROOT) -> str:
    """`CAIBASE_CODE_VERSION` if set (the container sets it), else the git commit, marked `-dirty` when a tracked
    file other than the pipeline's own outputs differs from it."""
    if env := os.environ.get("CAIBASE_CODE_VERSION"):
        return env
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no", "--", ".",
             *(f":(exclude){path}" for path in PIPELINE_OUTPUTS)],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
        return f"{commit}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.CalledProcessError):
        return f"caibase-{__version__}"


def stamp(config: dict, model_info: dict, seed: int | None) -> dict:
    """The provenance block stored with every record and artifact."""
    return {
        "seed": seed,
        "config_sha256": config_sha256(config),
        "model_id": model_info["id"],
        "model_kind": model_info["kind"],
        "model_sha256": model_info["sha256"],
        "code_version": code_version(),
    }
