"""Snakemake profiles: each parses and plans the paper's DAG with `snakemake -n`, the way a cluster run starts."""

import importlib.util
import subprocess

import pytest

from caibase.config import stage_resources

from conftest import REPO, load_config, snakemake_bin

SLURM_PLUGIN = importlib.util.find_spec("snakemake_executor_plugin_slurm") is not None


def dry_run(tmp_path, *args):
    return subprocess.run(
        [snakemake_bin(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "-n", *args],
        capture_output=True, text=True, timeout=300, cwd=REPO, check=False)


@pytest.mark.parametrize("config_name", ["paper.yaml", "scale.yaml"])
def test_default_profile_plans_the_gpu_runs(tmp_path, config_name):
    result = dry_run(tmp_path, "--cores", "1", "--configfile", f"config/{config_name}")
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.skipif(not SLURM_PLUGIN, reason="snakemake-executor-plugin-slurm is not installed: "
                    "pip install 'caibase[cluster]' (CI installs it)")
@pytest.mark.parametrize("config_name", ["paper.yaml", "scale.yaml"])
def test_slurm_profile_plans_every_job_with_its_resources(tmp_path, config_name):
    result = dry_run(tmp_path, "--profile", "profiles/slurm", "--configfile", f"config/{config_name}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    config = load_config(config_name)
    jobs = result.stdout.split("\nrule ")
    train = next(job for job in jobs if job.startswith("sft:"))
    resources = next(line for line in train.splitlines() if line.strip().startswith("resources:"))
    for key, value in stage_resources(config, "train").items():
        assert f"{key}={value}" in resources, (key, resources)
    light = next(job for job in jobs if job.startswith("check_prompt_splits:"))
    assert "mem_mb=4000" in light and "runtime=30" in light and "gpu=" not in light  # the profile's defaults

