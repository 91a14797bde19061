"""Training launchers (in-process or `accelerate launch`) and per-stage Snakemake resources."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from caibase.config import ConfigError, check_config, stage_resources, validate_schema
from caibase.launch import accelerate_command

from conftest import REPO, load_config, snakemake_bin


def accelerate_config(**training) -> dict:
    config = load_config("smoke.yaml")
    config["training"].update(launcher="accelerate", **training)
    return config


def test_default_launcher_is_in_process():
    assert load_config("smoke.yaml")["training"] == {
        "launcher": "python", "num_processes": 1, "accelerate_config": "workflow/accelerate/ddp.yaml",
        "report_to": "none"}


def test_accelerate_command_on_gpus_and_on_cpu():
    config = accelerate_config(num_processes=4, accelerate_config="workflow/accelerate/zero3.yaml")
    config["device"] = "cuda"
    command = accelerate_command("job.json", config, REPO)
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert command[3:] == ["--config_file", str(REPO / "workflow/accelerate/zero3.yaml"), "--num_processes", "4",
                           "-m", "caibase.launch", "job.json"]
    assert "--cpu" in accelerate_command("job.json", accelerate_config(), REPO)


@pytest.mark.parametrize("name", ["ddp.yaml", "zero3.yaml"])
def test_accelerate_configs_parse_as_accelerate_reads_them(name):
    from accelerate.commands.config.config_args import ClusterConfig

    parsed = ClusterConfig.from_yaml_file(str(REPO / "workflow" / "accelerate" / name))
    assert parsed.distributed_type.value == {"ddp.yaml": "MULTI_GPU", "zero3.yaml": "DEEPSPEED"}[name]
    if name == "zero3.yaml":
        assert parsed.deepspeed_config["zero_stage"] == 3


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.update(launcher="torchrun"), "training.launcher"),
    (lambda t: t.update(num_processes=0), "training.num_processes"),
    (lambda t: t.update(gpus=2), "Additional properties are not allowed \\('gpus'"),
])
def test_training_schema_errors_name_the_key(edit, message):
    config = load_config("smoke.yaml")
    edit(config["training"])
    with pytest.raises(ConfigError, match=message):
        validate_schema(config)


def test_missing_accelerate_config_and_deepspeed_on_cpu_fail_before_compute(repo):
    with pytest.raises(ConfigError, match=r"training\.accelerate_config: .*nope\.yaml is not a file"):
        check_config(accelerate_config(accelerate_config="workflow/accelerate/nope.yaml"), repo)
    with pytest.raises(ConfigError, match=r"training\.accelerate_config: DeepSpeed needs `device: cuda`"):
        check_config(accelerate_config(accelerate_config="workflow/accelerate/zero3.yaml"), repo)
    check_config(accelerate_config(), repo)


def test_stage_resources_from_config_over_schema_defaults():
    config = load_config("paper.yaml")
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    defaults = schema["properties"]["resources"]["properties"]
    config["resources"] = {"generate": {"runtime": 999}}
    assert stage_resources(config, "generate") == {**defaults["generate"]["default"], "runtime": 999}
    assert stage_resources(config, "train")["gpu"] == 1
    config["training"].update(launcher="accelerate", num_processes=8)
    assert stage_resources(config, "train")["gpu"] == 8  # one GPU per process
    config["device"] = "cpu"
    assert stage_resources(config, "train")["gpu"] == 0 and stage_resources(config, "generate")["gpu"] == 0
    with pytest.raises(ConfigError, match="resources.tokenize: unknown stage"):
        stage_resources(config, "tokenize")


def test_dry_run_shows_resources_and_benchmarks(tmp_path):
    result = subprocess.run(
        [snakemake_bin(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
         str(REPO / "config" / "paper.yaml"), "-n", "--cores", "1", "--printshellcmds"],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    jobs = result.stdout.split("\nrule ")
    sft = next(job for job in jobs if job.startswith("sft:"))
    assert "benchmark: results/paper-llama32-3b/benchmarks/sft/seed" in sft
    assert "runtime=" in sft and "gpu=1" in sft and "mem_mb=" in sft
    aggregate = next(job for job in jobs if job.startswith("aggregate:"))
    assert "benchmark:" not in aggregate and "gpu=" not in aggregate


@pytest.mark.slow
def test_sft_under_accelerate_launch_through_snakemake(tmp_path, data_mirror):
    """The accelerate path for real: Snakemake runs `accelerate launch --cpu` on the tiny model; the adapter, its
    history and a stamp that records the launcher come back."""
    config = load_config("smoke.yaml")
    config["training"].update(launcher="accelerate", num_processes=1)
    config_file = tmp_path / "accelerate.yaml"
    config_file.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [snakemake_bin(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
         str(config_file), "--cores", "2", "results/smoke/seed1/sft/adapter"],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    seed_dir = tmp_path / "results" / "smoke" / "seed1" / "sft"
    stamp = json.loads((seed_dir / "adapter" / "caibase.json").read_text())
    assert stamp["launcher"] == "accelerate" and stamp["num_processes"] == 1 and stamp["seed"] == 1
    assert (seed_dir / "adapter" / "adapter_model.safetensors").is_file()
    log = (tmp_path / "results" / "smoke" / "logs" / "seed1" / "sft.log").read_text()
    assert "accelerate.commands.launch" in log and "--num_processes 1 --cpu" in log
    assert not [p for p in seed_dir.iterdir() if p.name.startswith(".")], "temporary paths left behind"


@pytest.mark.slow
def test_two_process_data_parallel_sft_writes_one_adapter(tmp_path, tiny_model_dir):
    """Two processes (torch.distributed on CPU, gloo) run one SFT job the way `accelerate launch` starts them on two
    GPUs: the data is sharded (each step sees 2 x batch_size examples) and the main process writes the adapter."""
    config = load_config("smoke.yaml")
    config["training"].update(launcher="accelerate", num_processes=2)
    out = tmp_path / "sft"
    job = {"stage": "sft", "rule": "sft", "seed": 1, "threads": 1, "log": None, "wildcards": {"seed": "1"},
           "input": {"model": str(tiny_model_dir / "model_info.json"),
                     "demonstrations": str(REPO / config["prompts"]["helpful_sft"])},
           "output": {"adapter": str(out / "adapter"), "history": str(out / "history.csv")},
           "params": {"trainer": config["sft"]}, "config": config}
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job))
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "-m", "caibase.launch", str(job_file)], capture_output=True, text=True, timeout=600,
                            env=env, cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    stamp = json.loads((out / "adapter" / "caibase.json").read_text())
    assert stamp["num_processes"] == 2 and stamp["launcher"] == "accelerate"
    from safetensors.torch import load_file

    weights = load_file(out / "adapter" / "adapter_model.safetensors")
    assert weights and all("lora_" in name for name in weights)
    history = [line.split(",") for line in (out / "history.csv").read_text().splitlines()]
    header, rows = history[0], history[1:]
    assert len(rows) == config["sft"]["max_steps"]
    n_demos = sum(1 for _ in open(REPO / config["prompts"]["helpful_sft"]))
    first_epoch = float(rows[0][header.index("epoch")])
    # an epoch is ceil(n / (2 processes x batch_size)) steps; one process would take ceil(n / batch_size)
    assert first_epoch == pytest.approx(1 / math.ceil(n_demos / (2 * config["sft"]["batch_size"])))
    assert not [p for p in Path(out).iterdir() if p.name.startswith(".")], "temporary paths left behind"
