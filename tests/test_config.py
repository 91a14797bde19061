import subprocess

import pytest
import yaml

from caibase.config import ConfigError, check_config, validate_schema
from conftest import REPO, load_config, snakemake_bin


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml", "paper.yaml"])
def test_shipped_configs_are_valid(repo, name):
    config = load_config(name)
    validate_schema(config)
    check_config(config, repo)


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["sft"].update(max_steps="ten"), "sft.max_steps"),
    (lambda c: c.update(learning_rate=0.1), "Additional properties are not allowed \\('learning_rate'"),
    (lambda c: c["model"].update(source="ftp"), "model.source"),
    (lambda c: c.update(seeds=[]), "seeds"),
    (lambda c: c["model"].update(source="hub", revision="main"), "model.revision"),
    (lambda c: c.update(container="docker://debian:bookworm"), "container"),
])
def test_schema_errors_name_the_key(edit, message):
    config = load_config("smoke.yaml")
    edit(config)
    with pytest.raises(ConfigError, match=message):
        validate_schema(config)


def test_missing_prompt_file_names_key_and_file(repo):
    config = load_config("smoke.yaml")
    config["prompts"]["eval"]["jailbreak"] = "data/prompts/nope.jsonl"
    with pytest.raises(ConfigError, match=r"prompts\.eval\.jailbreak.*nope\.jsonl"):
        check_config(config, repo)


def test_hub_without_revision_and_local_without_path(repo):
    config = load_config("smoke.yaml")
    config["model"] = {"source": "hub", "kind": "base", "id": "x/y"}
    with pytest.raises(ConfigError, match="model.revision is required"):
        check_config(config, repo)
    config["model"] = {"source": "local", "kind": "base"}
    with pytest.raises(ConfigError, match="model.path is required"):
        check_config(config, repo)


def run_snakemake(tmp_path, config_file, *args):
    return subprocess.run(
        [snakemake_bin(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(config_file), *args],
        capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(surprise=1), "surprise"),
    (lambda c: c["dpo"].update(beta="high"), "beta"),
    (lambda c: c["prompts"].update(helpful_sft="data/prompts/missing.jsonl"), "missing.jsonl"),
    (lambda c: c["model"].update(source="gopher"), "gopher"),
])
def test_snakemake_rejects_bad_config_before_any_job(tmp_path, edit, message):
    config = load_config("smoke.yaml")
    edit(config)
    config_file = tmp_path / "bad.yaml"
    config_file.write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, config_file, "--cores", "1")
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["dpo"]["sweep"].update(eval_sets=["benign"]) or c["prompts"]["eval"].pop("benign"),
     r"dpo\.sweep\.eval_sets: 'benign'"),
    (lambda c: c["dpo"]["sweep"].update(pairs=["ai-feedback"]) or c["evaluation"].update(conditions=["dpo"]),
     r"dpo\.sweep\.pairs: ai-feedback pairs need dpo_aif"),
    (lambda c: c["feedback"]["chain_of_thought"].update(clamp=[0.6, 0.7]), r"feedback\.chain_of_thought\.clamp"),
])
def test_sweep_and_chain_of_thought_errors_name_the_key(repo, edit, message):
    config = load_config("smoke.yaml")
    edit(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config, repo)
