import json
import shutil
import subprocess

import pytest
import yaml

from caibase.config import ConfigError, check_config, check_repo_paths, validate_schema
from caibase.prompts import load_prompt_set

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


def test_instruct_ref_needs_an_instruct_reference_model(repo):
    """instruct_ref generates from evaluation.instruct_reference, an instruct model entry checked like `model`; the
    run's own model may be a base model."""
    config = load_config("smoke.yaml")
    assert config["model"]["kind"] == "base"
    config["evaluation"]["conditions"].append("instruct_ref")
    with pytest.raises(ConfigError, match=r"evaluation\.instruct_reference is required by the condition instruct_ref"):
        check_config(config, repo)
    config["evaluation"]["instruct_reference"] = {"source": "tiny", "kind": "base"}
    with pytest.raises(ConfigError, match=r"evaluation\.instruct_reference\.kind: .*must be an instruct model"):
        check_config(config, repo)
    config["evaluation"]["instruct_reference"] = {"source": "hub", "kind": "instruct", "id": "x/y-Instruct"}
    with pytest.raises(ConfigError, match=r"evaluation\.instruct_reference\.revision is required"):
        check_config(config, repo)
    config["evaluation"]["instruct_reference"]["revision"] = "main"
    with pytest.raises(ConfigError, match=r"evaluation\.instruct_reference\.revision"):
        check_config(config, repo)
    config["evaluation"]["instruct_reference"] = {"source": "tiny", "kind": "instruct"}
    check_config(config, repo)


def test_the_study_configs_pin_the_instruct_sibling_as_reference(repo):
    """seed.yaml and paper.yaml (Llama-3.2-3B base) compare against Llama-3.2-3B-Instruct, pinned; the embedded
    config against the same embedded instruct model."""
    for name in ("seed.yaml", "paper.yaml"):
        config = load_config(name)
        reference = config["evaluation"]["instruct_reference"]
        assert "instruct_ref" in config["evaluation"]["conditions"]
        assert reference["id"] == config["model"]["id"] + "-Instruct" and reference["kind"] == "instruct"
        assert reference["source"] == "hub" and len(reference["revision"]) == 40
    reference = load_config("config.yaml")["evaluation"]["instruct_reference"]
    assert reference["source"] == "embedded" and reference["kind"] == "instruct"
    check_config(load_config("seed.yaml"), repo)


def run_snakemake(tmp_path, config_file, *args):
    return subprocess.run(
        [snakemake_bin(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(config_file), *args],
        capture_output=True, text=True, timeout=300, check=False,
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


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["report"].update(publish_dir="x;touch PWNED;echo"), r"report\.publish_dir"),
    (lambda c: c["report"].update(publish_dir="../../x"), r"report\.publish_dir"),
    (lambda c: c["report"].update(publish_dir="/tmp/x"), r"report\.publish_dir"),
    (lambda c: c["prompts"]["eval"].update(jailbreak="../outside.jsonl"), r"prompts\.eval\.jailbreak"),
    (lambda c: c["evaluation"]["judge_validation"].update(labeled=["a b.jsonl"]),
     r"evaluation\.judge_validation\.labeled\.0"),
    (lambda c: c.update(seeds=[1.0, 2]), r"seeds\.0: 1\.0 is not of type 'integer'"),
    (lambda c: c["feedback"]["chain_of_thought"]["sampling"].update(temprature=0.5),
     r"feedback\.chain_of_thought\.sampling.*'temprature' was unexpected"),
    (lambda c: c["sft"].update(beta=0.1), r"sft.*'beta' was unexpected"),
    (lambda c: c["prompts"].update(eval_limits={"jailbrek": 3}), r"prompts\.eval_limits.*'jailbrek' was unexpected"),
])
def test_unsafe_paths_float_seeds_and_misspelled_keys_fail_validation(repo, edit, message):
    """Issue 13: these passed the schema (a shell injection, a path escape, a seed that breaks the DAG later, keys
    silently ignored). Each fails validation, naming the key; check_config applies the same strict schema."""
    config = load_config("smoke.yaml")
    edit(config)
    with pytest.raises(ConfigError, match=message):
        validate_schema(config)
    with pytest.raises(ConfigError, match=message):
        check_config(config, repo)


def test_a_path_that_resolves_outside_the_repository_is_refused(tmp_path):
    """A symbolic link inside the repository that leads out of it passes the pattern, not the resolved check."""
    base = tmp_path / "repo"
    (base / "data").mkdir(parents=True)
    (base / "data" / "out").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    config = load_config("smoke.yaml")
    config["report"]["publish_dir"] = "data/out/paper"
    with pytest.raises(ConfigError, match=r"config key report\.publish_dir: 'data/out/paper' resolves to .*outside"):
        check_repo_paths(config, base)
    config["report"]["publish_dir"] = "data/paper"
    check_repo_paths(config, base)


def test_prompt_files_that_are_not_utf8_or_not_objects_name_file_and_line(repo, tmp_path):
    """Issue 13: a JSON array line gave AttributeError, non-UTF-8 bytes named no file or line."""
    for folder in ("data", "constitution"):  # a copy of the repository's inputs, to add broken prompt files to
        shutil.copytree(repo / folder, tmp_path / folder)
    good = json.dumps({"id": "a", "category": "c", "split": "eval", "prompt": "hi"}) + "\n"
    for name, bad, message in (("array.jsonl", b'["id", "b"]\n', r"array\.jsonl:2: a JSON list where a JSON object"),
                               ("latin1.jsonl", '{"id": "b", "prompt": "caf\u00e9"}\n'.encode("latin-1"),
                                r"latin1\.jsonl:2: not UTF-8 \(byte 0xe9")):
        path = tmp_path / "data" / "prompts" / name
        path.write_bytes(good.encode() + bad)
        with pytest.raises(ValueError, match=message):
            load_prompt_set("jailbreak", path)
        config = load_config("smoke.yaml")
        config["prompts"]["eval"]["jailbreak"] = f"data/prompts/{name}"
        with pytest.raises(ConfigError, match=r"prompts\.eval\.jailbreak: .*" + message):
            check_config(config, tmp_path)


def test_the_config_module_and_the_workflow_parse_do_not_import_torch():
    """Parsing the DAG imports caibase.config (and the modules common.smk uses); torch stays out of that process."""
    import subprocess
    import sys

    code = ("import sys, caibase.config, caibase.fingerprint, caibase.data_scale; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
