"""What a job depends on besides its files: the config sections it declares and the library code its script runs
(caibase.fingerprint), which every rule passes as params so that a change reruns exactly the jobs it can change."""

import re
import shutil

import pytest

from caibase.fingerprint import JobConfigError, job_config, library_closure, library_fingerprint

from conftest import REPO

SCRIPTS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "scripts").glob("*.py"))


def test_job_config_takes_sections_and_dotted_keys_and_leaves_out_excluded_ones():
    config = {"dpo": {"beta": 0.1, "sweep": {"sizes": [4]}}, "evaluation": {"judge": {"backend": "x"}, "n": 3}}
    assert job_config(config, "dpo", "-dpo.sweep") == {"dpo": {"beta": 0.1}}
    judges = job_config(config, "evaluation.judge", "evaluation.score_judge")
    assert judges == {"evaluation": {"judge": {"backend": "x"}}}
    selected = job_config(config, "dpo")
    selected["dpo"]["sweep"]["sizes"].append(8)
    assert config["dpo"]["sweep"]["sizes"] == [4], "a copy: a job cannot change the workflow's config"
    with pytest.raises(JobConfigError, match="no section 'sft'"):
        job_config(config, "sft")


def test_every_rule_declares_its_config_and_library_and_no_script_reads_the_whole_config():
    rules = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    for script in SCRIPTS:
        if script.endswith(".py") and f'"../../{script}"' in rules:
            call = rf'job_params\(\s*"{re.escape(script)}"'  # snakefmt puts a long call's arguments on their own lines
            assert re.search(call, rules), f"{script}: its rule passes no job_params"
        assert "smk.config" not in (REPO / script).read_text(), f"{script} reads config outside params"


def test_the_library_closure_follows_imports_through_modules():
    closure = {p.as_posix() for p in library_closure("scripts/critique_revise.py")}
    assert {"caibase/critique.py", "caibase/generation.py", "caibase/prompts.py"} <= closure
    assert "caibase/data/judge_templates/refusal_v1.txt" in {p.as_posix() for p in library_closure("scripts/judge.py")}
    for script in ("scripts/train_sft.py", "scripts/generate_responses.py", "scripts/aggregate.py"):
        assert "caibase/critique.py" not in {p.as_posix() for p in library_closure(script)}, script


def test_touching_a_module_changes_the_fingerprint_of_exactly_the_scripts_that_run_it(tmp_path):
    package = tmp_path / "caibase"
    shutil.copytree(REPO / "src" / "caibase", package, ignore=shutil.ignore_patterns("__pycache__"))
    before = {script: library_fingerprint(script, package) for script in SCRIPTS}
    with open(package / "critique.py", "a", encoding="utf-8") as fh:
        fh.write("\n# touched\n")
    library_fingerprint.cache_clear()
    after = {script: library_fingerprint(script, package) for script in SCRIPTS}
    changed = sorted(script for script in SCRIPTS if before[script] != after[script])
    assert changed == ["scripts/critique_revise.py", "scripts/preference_pairs.py"]
