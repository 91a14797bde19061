"""Fetch a versioned run from the DVC remote and make Snakemake see it as up to date, without running any job.

    python -m caibase.dvc_pull --configfile config/config.yaml     # what `make pull` runs
    python -m caibase.dvc_pull --configfile config/smoke.yaml --remote localdir

DVC restores file contents, not modification times: after `dvc pull` the outputs carry checkout-order mtimes, and
Snakemake's mtime trigger would rerun jobs whose outputs look older than their inputs. Touching every output blindly
would also hide real staleness, so the order is:

1. `dvc pull` fetches the outputs recorded in dvc.lock;
2. `dvc status` must report every stage unchanged: each dependency (code, config, prompt data, lock file) and each
   output has the checksum that dvc.lock recorded for the reference run. Anything else stops here, naming the stages;
3. only then `snakemake --touch` sets the outputs' mtimes in DAG order (nothing runs), and
4. `snakemake --dry-run` must report nothing to do.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path


class PullError(RuntimeError):
    """The pulled run does not match dvc.lock or the checked-out code; nothing was touched."""


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise PullError(f"{name} not found beside {sys.executable} or on PATH (run `make venv`)")
    return found


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def changed_stages(repo: Path) -> dict:
    """`dvc status` as a dict: stage -> what differs from dvc.lock; empty when everything matches."""
    result = _run([_tool("dvc"), "status", "--json"], repo)
    if result.returncode != 0:
        raise PullError(f"dvc status failed:\n{result.stderr}")
    return json.loads(result.stdout or "{}")


def pull(repo: Path, configfile: str, remote: str | None = None) -> None:
    dvc, snakemake = _tool("dvc"), _tool("snakemake")
    fetched = _run([dvc, "pull", *(["--remote", remote] if remote else [])], repo)
    if fetched.returncode != 0:
        raise PullError(f"dvc pull failed:\n{fetched.stdout}{fetched.stderr}")

    changed = changed_stages(repo)
    if changed:
        raise PullError("the workspace does not match dvc.lock, so the pulled outputs are not marked up to date; "
                        f"`dvc status` reports:\n{json.dumps(changed, indent=1)}")

    smk = [snakemake, "--cores", "1", "--configfile", configfile]
    touched = _run([*smk, "--touch"], repo)
    if touched.returncode != 0:
        raise PullError(f"snakemake --touch failed:\n{touched.stdout}{touched.stderr}")
    dry = _run([*smk, "--dry-run"], repo)
    if dry.returncode != 0 or "Nothing to be done" not in dry.stdout + dry.stderr:
        raise PullError(f"after pulling, Snakemake still has jobs to run for {configfile} (is dvc.yaml versioning "
                        f"another config?):\n{dry.stdout[-3000:]}{dry.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configfile", default="config/config.yaml", help="the config dvc.yaml versions")
    parser.add_argument("--remote", help="DVC remote name (default: the repository's default remote)")
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    try:
        pull(args.repo, args.configfile, args.remote)
    except PullError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"pulled and verified against dvc.lock; Snakemake reports nothing to do for {args.configfile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
