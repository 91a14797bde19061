"""`make compare`: a rerun's published numbers against the published ones (caibase.reproduce)."""

import copy
import json
import subprocess

import pytest

from caibase.reproduce import ComparisonError, compare, load_published, main


def _entry(key, value, display=None):
    return {"key": key, "value": value, "display": display if display is not None else f"{value:.2f}"}


def _published(numbers, **meta):
    return {"format": "caibase-published/1", "tolerance": {"abs": 1e-6},
            "meta": {"code_version": "a", "config_sha256": "c", "device": "cpu", **meta}, "numbers": numbers}


BASELINE = _published([
    _entry("summary/dpo/asr_jailbreak/mean", 0.50),
    _entry("summary/dpo/asr_jailbreak/ci95_low", 0.40),
    _entry("summary/dpo/asr_jailbreak/ci95_high", 0.60),
    _entry("summary/sft/asr_jailbreak/mean", 0.70),
    _entry("summary/sft/asr_jailbreak/ci95_low", 0.65),
    _entry("summary/sft/asr_jailbreak/ci95_high", 0.75),
    _entry("paired/dpo/sft/asr_jailbreak/difference", -0.20),
    _entry("paired/dpo/sft/asr_jailbreak/ci95_low", -0.30),
    _entry("paired/dpo/sft/asr_jailbreak/ci95_high", -0.10),
    _entry("paired/dpo/sft/asr_jailbreak/p_permutation", 0.01, "0.010"),
    _entry("feedback/hhh/accuracy", 0.55),
    _entry("feedback/hhh/accuracy_ci95_low", 0.45),
    _entry("feedback/hhh/accuracy_ci95_high", 0.65),
    _entry("gate/dpo_aif/valid", 1.0, "yes"),
    _entry("cost/dpo/wall_min", 21.1, "21.1"),
])


def _rerun(changes: dict, drop=(), add=()):
    data = copy.deepcopy(BASELINE)
    data["numbers"] = [e for e in data["numbers"] if e["key"] not in drop] + list(add)
    for entry in data["numbers"]:
        if entry["key"] in changes:
            entry["value"], entry["display"] = changes[entry["key"]]
    return data


def _classes(result):
    return {row["key"]: row["class"] for row in result["numbers"]}


def test_every_number_gets_the_class_it_earns():
    rerun = _rerun({
        "summary/dpo/asr_jailbreak/mean": (0.5000000001, "0.50"),  # identical within the tolerance
        "summary/sft/asr_jailbreak/mean": (0.7031, "0.70"),  # same digits shown
        "summary/sft/asr_jailbreak/ci95_low": (0.6600, "0.66"),  # a bound with no interval of its own: differs
        "paired/dpo/sft/asr_jailbreak/difference": (-0.25, "-0.25"),  # inside the published interval
        "feedback/hhh/accuracy": (0.70, "0.70"),  # outside [0.45, 0.65]
        "cost/dpo/wall_min": (30.0, "30.0"),  # the machine's, never compared
    }, drop=["summary/dpo/asr_jailbreak/ci95_high"], add=[_entry("summary/dpo/asr_jailbreak/extra", 1.0)])
    result = compare(BASELINE, rerun)
    classes = _classes(result)
    assert classes["summary/dpo/asr_jailbreak/mean"] == "identical"
    assert classes["summary/sft/asr_jailbreak/mean"] == "same_display"
    assert classes["summary/sft/asr_jailbreak/ci95_low"] == "differs"
    assert classes["paired/dpo/sft/asr_jailbreak/difference"] == "within_ci"
    assert classes["feedback/hhh/accuracy"] == "differs"
    assert classes["cost/dpo/wall_min"] == "machine"
    assert classes["summary/dpo/asr_jailbreak/ci95_high"] == "missing"
    assert classes["summary/dpo/asr_jailbreak/extra"] == "new"
    assert result["compared"] == 13 and result["reproduced"] == 11 and result["counts"]["differs"] == 2


def test_a_changed_conclusion_is_reported_and_fails_require():
    # the same difference, but its interval now reaches 0: the paper's claim about it no longer holds
    rerun = _rerun({"paired/dpo/sft/asr_jailbreak/ci95_high": (0.01, "0.01"), "gate/dpo_aif/valid": (0.0, "no")})
    result = compare(BASELINE, rerun)
    changed = {row["key"]: row for row in result["conclusions"]["changed"]}
    assert set(changed) == {"paired/dpo/sft/asr_jailbreak", "gate/dpo_aif/valid"}
    assert changed["paired/dpo/sft/asr_jailbreak"]["published"] is True
    assert changed["paired/dpo/sft/asr_jailbreak"]["rerun"] is False


def test_the_command_line_reads_the_baseline_from_git_and_exits_by_require(tmp_path, monkeypatch, capsys):
    repo = tmp_path / "checkout"
    (repo / "paper").mkdir(parents=True)
    (repo / "paper" / "published.json").write_text(json.dumps(BASELINE))
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ref"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    # a rerun overwrites paper/ in the working tree (publish_dir) and writes results/<run>/paper/published.json
    rerun = _rerun({"summary/sft/asr_jailbreak/mean": (0.74, "0.74")})
    (repo / "paper" / "published.json").write_text(json.dumps(rerun))
    (repo / "results" / "ref" / "paper").mkdir(parents=True)
    (repo / "results" / "ref" / "paper" / "published.json").write_text(json.dumps(rerun))
    (repo / "config.yaml").write_text("run_name: ref\nreport: {publish_dir: paper}\n")
    monkeypatch.chdir(repo)

    assert main(["--configfile", "config.yaml", "--published-rev", "HEAD"]) == 0
    out = capsys.readouterr().out
    assert "14 numbers compared: 13 identical, 0 the same to the digits shown, 1 inside" in out
    report = json.loads((repo / "results" / "ref" / "reproduction.json").read_text())
    assert sorted(p.name for p in (repo / "results" / "ref" / "paper").iterdir()) == ["published.json"]
    assert report["counts"]["within_ci"] == 1
    assert main(["--configfile", "config.yaml", "--published-rev", "HEAD", "--require", "within_ci"]) == 0
    assert main(["--configfile", "config.yaml", "--published-rev", "HEAD", "--require", "same_display"]) == 1
    # without --published-rev the overwritten working-tree file is the baseline: everything is identical
    assert main(["--configfile", "config.yaml", "--require", "identical"]) == 0


def test_bad_inputs_name_the_file(tmp_path):
    bad = tmp_path / "published.json"
    bad.write_text('{"numbers": []}')
    with pytest.raises(ComparisonError, match="published.json: not a published-numbers file"):
        load_published(bad)
    with pytest.raises(ComparisonError, match="no such file"):
        load_published(tmp_path / "absent.json")
    (tmp_path / "c.yaml").write_text("run_name: x\n")
    assert main(["--configfile", str(tmp_path / "c.yaml")]) == 2


def test_the_reference_run_reproduces_itself(repo):
    published = load_published(repo / "paper" / "published.json")
    result = compare(published, published)
    assert result["counts"]["differs"] == 0 and result["reproduced"] == result["compared"] > 600
    assert result["conclusions"]["changed"] == [] and result["conclusions"]["n"] > 0
