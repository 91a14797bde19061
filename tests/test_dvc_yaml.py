"""dvc.yaml: the records every published number is computed from are `cache: false` outputs that git versions, the
large outputs stay in the DVC cache, and the lists DVC templating cannot compute match config/config.yaml."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from caibase.vocabulary import DPO_POLICIES, sweep_policy

from conftest import REPO, load_config


@pytest.fixture(scope="module")
def outs() -> dict[str, bool]:
    """Every output path of the resolved dvc.yaml -> whether DVC caches it."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        return {str(Path(out.fs_path).relative_to(REPO)): out.use_cache for stage in repo.index.stages
                for out in stage.outs}


def git_ignored(paths: list[str]) -> set[str]:
    result = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=REPO, input="\n".join(paths),
                            capture_output=True, text=True, check=False)
    return set(result.stdout.split())


def test_template_lists_match_the_config():
    config = load_config("config.yaml")
    dvc_vars = yaml.safe_load((REPO / "dvc.yaml").read_text())["vars"][0]
    conditions, sweep = config["evaluation"]["conditions"], config["dpo"]["sweep"]
    assert dvc_vars["dpo_pairs"] == [pairs for policy, pairs in DPO_POLICIES.items() if policy in conditions]
    assert dvc_vars["sweep_policies"] == [sweep_policy(pairs, n) for pairs in sweep["pairs"] for n in sweep["sizes"]]
    assert dvc_vars["config"] == "config/config.yaml" and "config/config.yaml" in dvc_vars["snakemake"]


def test_published_sources_are_git_versioned_outputs(outs):
    """Each raw source published.json names is (in) a `cache: false` output and not git-ignored, so a clone has it."""
    published = json.loads((REPO / "paper" / "published.json").read_text())
    sources = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "sources":
                    sources.update(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(published)
    sources = {s for s in sources if s.startswith("results/")}
    assert sources, "published.json names no raw sources"
    def uncached(path: str) -> bool:  # the file, or a folder above it (benchmarks/), is a `cache: false` output
        return any(outs.get(str(p)) is False for p in (Path(path), *Path(path).parents))

    missing = sorted(s for s in sources if not uncached(s))
    assert not missing, f"not `cache: false` outputs of dvc.yaml: {missing}"
    assert not git_ignored(sorted(sources))


def test_git_versions_exactly_the_uncached_outputs(outs):
    uncached = sorted(path for path, cached in outs.items() if not cached)
    cached = sorted(path for path, cached in outs.items() if cached)
    probe = [f"{path}/x.csv" if not Path(path).suffix else path for path in uncached]  # tables/ is a directory
    assert not git_ignored(probe), "a `cache: false` output is git-ignored: add a `!` line to .gitignore"
    probe = [f"{path}/x.bin" if not Path(path).suffix else path for path in cached]
    assert git_ignored(probe) == set(probe), "a cached output is not git-ignored"
    assert not any("model/weights" in path for path in outs), "the converted model is rebuilt, not pushed"
    assert any(path.endswith("model/model_info.json") for path in uncached)
