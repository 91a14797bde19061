"""The `seed-2025` source (the replicated study's files, pinned and parsed with `ast`) and config/seed.yaml."""

import shutil
import subprocess

import pytest
import yaml

from caibase import seed2025
from caibase.config import ConfigError, check_config, validate_schema
from caibase.sources import SourceError, fetch

from conftest import REPO, load_config, snakemake_bin


@pytest.fixture
def study(data_mirror):
    return seed2025.load_study()


def test_the_source_parses_to_the_studys_principles_and_prompts(study):
    assert len(study.principles) == 18
    assert {k: len(study.prompts[k]) for k in ("jailbreak", "direct", "borderline", "benign", "helpful_eval")} == {
        "jailbreak": 24, "direct": 8, "borderline": 8, "benign": 8, "helpful_eval": 10}
    assert len(study.demonstrations) == 6 and all(d["instruction"] and d["response"] for d in study.demonstrations)
    assert sum(len(s["test_prompts"]) for s in study.styles.values()) == 39
    assert {"harmlessness", "helpfulness", "style"} <= set(study.templates)
    filled = study.templates["harmlessness"].format(prompt="P?", response="R!")
    assert '"P?"' in filled and '"R!"' in filled and "{" not in filled
    assert study.cai_config["num_revision_rounds"] == 4 and study.cai_config["lora_rank"] == 32


def test_constitution_seed_2025_has_the_18_principles_as_critique_and_revision_requests(data_mirror):
    from caibase.constitution import load_constitution

    constitution = load_constitution("seed-2025", REPO)
    assert constitution.name == "seed-2025" and len(constitution.critique_principles) == 18
    assert all(p.critique_request and p.revision_request and p.critique_request != p.revision_request
               for p in constitution.critique_principles)
    assert constitution.critique_fewshot  # the format's few-shot transcripts, from this project's folder


def test_held_out_keeps_evaluation_prompts_out_of_training_and_same_prompts_is_the_study(study):
    from caibase.prompts import PromptSet, find_contamination

    def sets(protocol):
        return [PromptSet(name, None, tuple(seed2025.prompt_set_records(name, protocol, study)))
                for name in ("redteam_train", "jailbreak", "helpful_eval", "direct", "benign")]

    held = {s.name: s for s in sets("held_out")}
    assert len(held["jailbreak"].records) == 12 and len(held["helpful_eval"].records) == 5
    assert len(held["redteam_train"].records) == 25
    assert find_contamination(list(held.values())) == []
    same = {s.name: s for s in sets("same_prompts")}
    assert len(same["redteam_train"].records) == 42 and len(same["jailbreak"].records) == 24
    assert len(find_contamination(list(same.values()))) >= 34  # every jailbreak and helpful prompt is trained on
    # the split is stable: it depends on the prompts' text, not on their order
    prompts = study.prompts["jailbreak"]
    train, _ = seed2025.held_out_split(prompts, "jailbreak")
    reversed_train, _ = seed2025.held_out_split(tuple(reversed(prompts)), "jailbreak")
    assert sorted(prompts[i] for i in train) == sorted(prompts[::-1][i] for i in reversed_train)


def test_a_tampered_file_is_refused(tmp_path, monkeypatch, data_mirror):
    copy = tmp_path / "mirror"
    shutil.copytree(data_mirror / "seed-repo", copy / "seed-repo")
    target = copy / "seed-repo" / "src" / "config.py"
    target.chmod(0o644)
    target.write_text(target.read_text() + "\n# one more line\n")
    monkeypatch.setenv("CAI_DATA_MIRROR", str(copy))
    with pytest.raises(SourceError, match="sha256"):
        fetch("seed-repo/src/config.py")
    with pytest.raises(SourceError, match="sha256"):
        seed2025.load_study()


def _files(tmp_path, config_text: str):
    config_py = tmp_path / "config.py"
    config_py.write_text(config_text)
    evaluation = tmp_path / "evaluation.py"
    evaluation.write_text('def _judge_harmlessness(p, r):\n    judge_content = f"H {prompt} {response}"\n'
                          'def _judge_helpfulness(p, r):\n    judge_content = f"E {prompt} {response}"\n')
    style = tmp_path / "style.py"
    style.write_text('STYLE_PROMPTS = {"s": {"instruction": "I", "test_prompts": ["q"]}}\n'
                     'NON_ENGLISH_STYLES = {}\nPERSONA_STYLES = {}\n'
                     'def _judge_style_adherence(a, b, c, d):\n'
                     '    judge_content = f"S {style_instruction} {response}"\n'
                     'def evaluate_style(a):\n    styled_prompt = f"{instruction} / {prompt}"\n')
    return config_py, evaluation, style


SAFE_CONFIG = '''
CONSTITUTION = [{"name": "n", "category": "c", "critique_prompt": "cq", "revision_prompt": "rq"}]
RED_TEAM_PROMPTS_DIRECT = ["d"]
RED_TEAM_PROMPTS_JAILBREAK = ["j1", "j2"]
RED_TEAM_PROMPTS_BORDERLINE = ["b"]
RED_TEAM_PROMPTS_BENIGN = ["g"]
EVAL_HELPFUL_PROMPTS = ["h1", "h2"]
class HelpfulPrompt:
    instruction: str
    response: str
HELPFUL_PROMPTS = [HelpfulPrompt("i", response="r")]
class CAIConfig:
    sft_steps: int = 1000
'''


def test_the_parser_reads_literals_and_never_executes_code(tmp_path):
    study = seed2025.parse_study(*_files(tmp_path, SAFE_CONFIG))
    assert study.demonstrations == ({"instruction": "i", "response": "r"},)
    assert study.cai_config == {"sft_steps": 1000}
    marker = tmp_path / "executed"
    hostile = {
        "call in a list": SAFE_CONFIG.replace('["d"]', f'[__import__("os").system("touch {marker}")]'),
        "call in a demonstration": SAFE_CONFIG.replace('response="r"', f'response=os.system("touch {marker}")'),
        "other call": SAFE_CONFIG.replace('HelpfulPrompt("i"', f'eval("open(\'{marker}\', \'w\')"'),
        "expression in a principle": SAFE_CONFIG.replace('"cq"', '"c" + str(1)'),
    }
    for what, text in hostile.items():
        with pytest.raises(seed2025.SeedSourceError):
            seed2025.parse_study(*_files(tmp_path, text))
        assert not marker.exists(), what
    # top-level code in the file is never run either (it is only parsed)
    study = seed2025.parse_study(*_files(tmp_path, SAFE_CONFIG + f'import os\nos.system("touch {marker}")\n'))
    assert not marker.exists() and study.prompts["jailbreak"] == ("j1", "j2")


def test_seed_yaml_validates_and_names_the_studys_sets():
    config = load_config("seed.yaml")
    validate_schema(config)
    assert config["constitution"] == "seed-2025"
    assert config["prompts"]["eval"]["jailbreak"] == "seed-2025:jailbreak"
    assert config["critique"]["rounds"] == 4 and config["sft"]["max_steps"] == config["dpo"]["max_steps"] == 500
    assert 42 in config["dpo"]["sweep"]["sizes"] and len(config["seeds"]) == 10
    check_config(config, REPO)  # needs no fetch: the seed sets are written by the workflow
    bad = yaml.safe_load((REPO / "config" / "seed.yaml").read_text())
    bad["prompts"]["eval"]["jailbreak"] = "seed-2025:nope"
    with pytest.raises(ConfigError, match="prompts.eval.jailbreak"):
        validate_schema(bad)


def test_seed_yaml_dry_run_plans_the_study(data_mirror):
    result = subprocess.run([snakemake_bin(), "-n", "--configfile", "config/seed.yaml"], cwd=REPO,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert "'principles': 18" in out and "'jailbreak': 24" in out and "'direct': 8" in out
    assert "'borderline': 8" in out and "'benign': 8" in out
    assert "redteam_train=25, jailbreak=12" in out  # held_out by default
    assert "seed_prompt_set" in out and "dpo_subsample" in out
    # the judges ask with the study's judge prompts: its files, sha256-checked, are inputs of their jobs
    judge_inputs = [line for line in out.splitlines() if line.strip().startswith("input:") and "judged" not in line
                    and ("eval/dpo/responses.jsonl" in line or "judge_labels" in line)]
    assert judge_inputs and all(str(data_mirror / "seed-repo/src/evaluation.py") in line for line in judge_inputs)
