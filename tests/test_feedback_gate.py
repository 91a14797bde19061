"""The feedback-model gate (issue 15, item 6): a feedback model whose Wilson interval does not lie above chance on a
validation set marks the AI-feedback condition invalid in the aggregated tables, metrics.json, the published numbers,
the paper's tables, figures and macros; `feedback.gate.on_fail: fail` fails the validation job instead. Fast: no
model runs (the validation job's scorer is replaced by canned records)."""

import json
import runpy
import sys
from types import SimpleNamespace

import pandas as pd
import pytest

from caibase import published as pub
from caibase.artifacts import read_json, write_csv, write_jsonl
from caibase.feedback_gate import FeedbackGateError, condition_validity, enforce, feedback_gate, gated, mark_conditions
from caibase.figures import write_figures
from caibase.macros import macros_tex
from caibase.metrics import validation_summary
from caibase.report import invalid_conditions
from caibase.tables import write_tables

from conftest import REPO, load_config

AT_CHANCE = {"accuracy": 0.5, "accuracy_ci95_wilson": [0.40, 0.60], "n": 100}
ABOVE = {"accuracy": 0.8, "accuracy_ci95_wilson": [0.72, 0.86], "n": 100}
CONDITIONS = ("sft", "dpo", "dpo_aif")


def test_a_feedback_model_at_chance_fails_the_gate_naming_set_accuracy_and_interval():
    gate = feedback_gate({"hhh": AT_CHANCE, "hh_rlhf_harmless_base": ABOVE, "provenance": {"seed": None}})
    assert not gate.valid and gate.sets["hhh"]["passed"] is False and gate.sets["hh_rlhf_harmless_base"]["passed"]
    assert "on hhh is 0.50 (n=100)" in gate.reason and "[0.40, 0.60] does not lie above chance (0.5)" in gate.reason
    assert "hh_rlhf" not in gate.reason  # only the failing set is named
    assert feedback_gate({"hhh": ABOVE, "hh_rlhf_harmless_base": ABOVE}).valid
    # the lower bound must lie above chance, not the accuracy: 0.58 [0.48, 0.67] does not pass
    assert not feedback_gate({"hhh": {"accuracy": 0.58, "accuracy_ci95_wilson": [0.48, 0.67], "n": 100}}).valid
    assert not feedback_gate({"hhh": {"accuracy": None, "accuracy_ci95_wilson": [None, None], "n": 0}}).valid
    with pytest.raises(ValueError, match="no validation set"):
        feedback_gate({"provenance": {}})


def test_on_fail_fail_raises_with_the_set_and_interval_and_mark_does_not():
    gate = feedback_gate({"hhh": AT_CHANCE})
    with pytest.raises(FeedbackGateError, match=r"on_fail: fail.*dpo_aif is invalid.*on hhh is 0\.50.*"
                                                r"\[0\.40, 0\.60\].*on_fail: mark"):
        enforce(gate, "fail")
    enforce(gate, "mark")
    enforce(feedback_gate({"hhh": ABOVE}), "fail")
    with pytest.raises(ValueError, match="on_fail"):
        enforce(gate, "warn")


def test_only_the_ai_feedback_condition_and_its_sweep_points_are_gated():
    assert gated("dpo_aif") and gated("dpo_aif_n42")
    assert not any(map(gated, ("dpo", "dpo_n42", "sft", "slcai", "base", "instruct_ref", "dpo_aiff")))
    gate = feedback_gate({"hhh": AT_CHANCE})
    assert condition_validity("dpo", gate) == (True, "")
    valid, reason = condition_validity("dpo_aif", gate)
    assert not valid and reason.startswith("dpo_aif: the feedback model's accuracy on hhh")
    assert condition_validity("dpo_aif", None) == (True, "")  # no validation, no gate (config requires one)
    paired = pd.DataFrame({"treatment": ["dpo", "dpo_aif", "dpo_aif"], "control": ["sft", "sft", "dpo"]})
    marked = mark_conditions(paired, gate, columns=("treatment", "control"))
    assert list(marked.valid) == [True, False, False] and marked.invalid_reason[0] == ""


def test_the_schema_default_is_mark_and_dpo_aif_needs_a_validated_feedback_model(repo):
    from caibase.config import ConfigError, check_config, validate_schema

    for name in ("config.yaml", "smoke.yaml", "paper.yaml", "scale.yaml"):
        assert load_config(name)["feedback"]["gate"] == {"on_fail": "mark"}, name
    config = load_config("smoke.yaml")
    config["feedback"]["gate"] = {"on_fail": "explode"}
    with pytest.raises(ConfigError, match=r"feedback\.gate\.on_fail"):
        validate_schema(config)
    config = load_config("smoke.yaml")
    config["feedback"]["validate"] = False
    with pytest.raises(ConfigError, match=r"feedback\.validate: the AI-feedback condition dpo_aif"):
        check_config(config, repo)


# ---------------------------------------------------------------------------------------------------------------
# The validation job, as Snakemake runs it


def canned_records(n: int, correct: int) -> list[dict]:
    return [{"id": f"x{i}", "p_correct_order_ab": 0.6 if i < correct else 0.4, "p_correct_order_ba": 0.6
             if i < correct else 0.4, "p_correct": 0.6 if i < correct else 0.4, "correct": i < correct,
             "confidence": 0.6, "position_consistent": True} for i in range(n)]


def run_validate_feedback_model(tmp_path, monkeypatch, tiny_model_dir, on_fail, correct):
    """scripts/validate_feedback_model.py with a stand-in `snakemake` object and canned scores (no model run)."""
    monkeypatch.setattr("caibase.sources.hhh_rows", lambda sample: [])
    monkeypatch.setattr("caibase.sources.hh_rlhf_harmless_rows", lambda: [])
    monkeypatch.setattr("caibase.feedback.score_hhh", lambda *a, **k: canned_records(100, correct))
    monkeypatch.setattr("caibase.feedback.score_labeled_pairs", lambda *a, **k: canned_records(40, 30))
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # setup() redirects both to the log; monkeypatch restores them
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    config = load_config("smoke.yaml")
    feedback = {**config["feedback"], "gate": {"on_fail": on_fail}}
    out = tmp_path / "validation"
    smk = SimpleNamespace(
        input=SimpleNamespace(model=str(tiny_model_dir / "model_info.json")),
        output=SimpleNamespace(hhh=str(out / "hhh.jsonl"), hh_rlhf=str(out / "hh_rlhf.jsonl"),
                               summary=str(out / "summary.json")),
        params=SimpleNamespace(config={k: config[k] for k in ("model", "device", "constitution")},
                               feedback=feedback),
        log=[str(tmp_path / "validate_feedback_model.log")], threads=1)
    runpy.run_path(str(REPO / "scripts" / "validate_feedback_model.py"), init_globals={"snakemake": smk})
    return smk


def test_on_fail_fail_fails_the_validation_job_and_mark_writes_the_gate(tmp_path, monkeypatch, tiny_model_dir):
    with pytest.raises(FeedbackGateError, match=r"on hhh is 0\.50 \(n=100\).*\[0\.40, 0\.60\]"):
        run_validate_feedback_model(tmp_path, monkeypatch, tiny_model_dir, "fail", correct=50)
    log = (tmp_path / "validate_feedback_model.log").read_text()
    assert "feedback.gate.on_fail: fail" in log and "[0.40, 0.60]" in log  # the log keeps the reason
    smk = run_validate_feedback_model(tmp_path, monkeypatch, tiny_model_dir, "mark", correct=50)
    gate = read_json(smk.output.summary)["gate"]
    assert gate["valid"] is False and "on hhh" in gate["reason"] and gate["chance"] == 0.5
    smk = run_validate_feedback_model(tmp_path, monkeypatch, tiny_model_dir, "fail", correct=85)  # passes
    gate = read_json(smk.output.summary)["gate"]
    assert gate["valid"] is True and gate["reason"] == ""


# ---------------------------------------------------------------------------------------------------------------
# Aggregate, published numbers, tables, figures and macros


def judged_records(condition, seed, n=8):
    return [{"id": f"{prompt_set}-{i}", "seed": seed, "condition": condition, "prompt_set": prompt_set,
             "status": "ok", "task": "refusal", "judge": "refusal-strings", "judge_backend": "refusal-strings",
             "judge_model": None, "judge_is_proxy": True, "judge_template_sha256": None,
             "attack_success": prompt_set == "jailbreak" and (i + seed) % 3 == 0,
             "refused": prompt_set == "benign" and (i + seed) % 4 == 0}
            for prompt_set in ("jailbreak", "benign") for i in range(n)]


@pytest.fixture(params=["at_chance", "above_chance"])
def run(request, tmp_path, monkeypatch):
    """A run's records (three conditions, two seeds) and its feedback model's validation, at chance (HHH: 50 of
    100 correct, Wilson [0.40, 0.60]) or clearly above it (85 of 100), aggregated by scripts/aggregate.py."""
    monkeypatch.chdir(tmp_path)
    correct = 50 if request.param == "at_chance" else 85
    judged = {c: [] for c in CONDITIONS}
    for condition in CONDITIONS:
        for seed in (1, 2):
            path = f"seed{seed}/eval/{condition}/judged.jsonl"
            write_jsonl(path, judged_records(condition, seed))
            judged[condition].append(path)
    feedback = {"hhh": "feedback/validation/hhh.jsonl", "hh_rlhf": "feedback/validation/hh_rlhf.jsonl"}
    write_jsonl(feedback["hhh"], canned_records(100, correct))
    write_jsonl(feedback["hh_rlhf"], canned_records(40, 34))
    summary = {"hhh": validation_summary(canned_records(100, correct)),
               "hh_rlhf_harmless_base": validation_summary(canned_records(40, 34))}
    (tmp_path / "feedback/validation/summary.json").write_text(json.dumps(summary))
    (tmp_path / "model_info.json").write_text(json.dumps({"id": "caibase/tiny-random-llama", "source": "tiny",
                                                           "kind": "base", "sha256": "a" * 64, "revision": None}))
    write_csv(pd.DataFrame([{"judge": "refusal-strings", "dataset": "labels", "n": 2, "agreement": 1.0}]),
              "judge_agreement.csv")
    (tmp_path / "gate.json").write_text(json.dumps({"on_fail": "mark", "gates": {}}))  # no judge gated here
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    tables = tmp_path / "tables"
    smk = SimpleNamespace(
        input=SimpleNamespace(judged=[p for c in CONDITIONS for p in judged[c]], model="model_info.json",
                              feedback=["feedback/validation/summary.json"], judge_agreement="judge_agreement.csv",
                              judge_gate="gate.json"),
        output=SimpleNamespace(summary=str(tables / "summary_by_condition.csv"), per_seed=str(tables / "per_seed.csv"),
                               paired=str(tables / "paired_differences.csv"), status=str(tables / "judge_status.csv"),
                               metrics=str(tmp_path / "metrics.json")),
        params=SimpleNamespace(bootstrap_samples=200, config={
            "run_name": "gate", "seeds": [1, 2], "evaluation": {"conditions": list(CONDITIONS),
                                                                "samples_per_prompt": 1}}),
        log=[str(tmp_path / "aggregate.log")])
    runpy.run_path(str(REPO / "scripts" / "aggregate.py"), init_globals={"snakemake": smk})
    return SimpleNamespace(root=tmp_path, smk=smk, judged=judged, feedback=feedback,
                           at_chance=request.param == "at_chance")


def test_the_aggregated_tables_and_metrics_mark_the_condition(run):
    summary = pd.read_csv(run.smk.output.summary)
    assert {"valid", "invalid_reason"} <= set(summary.columns)
    aif = summary[summary.condition == "dpo_aif"]
    assert (summary[summary.condition != "dpo_aif"].valid).all()
    paired = pd.read_csv(run.smk.output.paired)
    involved = paired.treatment.eq("dpo_aif") | paired.control.eq("dpo_aif")
    assert involved.any() and paired[~involved].valid.all()
    metrics = read_json(run.smk.output.metrics)
    per_seed = pd.read_csv(run.smk.output.per_seed)
    if run.at_chance:
        assert not aif.valid.any() and aif.invalid_reason.str.contains(r"on hhh is 0\.50 \(n=100\)").all()
        assert not paired[involved].valid.any() and not per_seed[per_seed.condition == "dpo_aif"].valid.any()
        assert metrics["feedback_gate"]["valid"] is False and "[0.40, 0.60]" in metrics["feedback_gate"]["reason"]
        assert not [row for row in metrics["summary"] if row["condition"] == "dpo_aif" and row["valid"]]
    else:
        assert aif.valid.all() and paired.valid.all() and metrics["feedback_gate"]["valid"] is True
        assert aif.invalid_reason.isna().all()  # empty


def published_run(run):
    summary = pd.read_csv(run.smk.output.summary)
    paired = pd.read_csv(run.smk.output.paired)
    numbers = pub.build_numbers(summary, paired, run.judged, run.feedback, {}, n_boot=200)
    meta = {"run_name": "gate", "model": {"id": "caibase/tiny", "kind": "base", "source": "tiny", "sha256": "a" * 64},
            "config_sha256": "b" * 64, "code_version": "c", "results_code_versions": ["c"],
            "judge": "refusal-strings", "score_judge": "none", "judge_is_proxy": True, "device": "cpu",
            "seeds": [1, 2], "prompts_per_set": "8", "samples_per_prompt": 1, "bootstrap_samples": 200,
            "ci_level": 0.95, "conditions": list(CONDITIONS), "dpo_beta": 0.1, "dpo_steps": 3, "critique_rounds": 1,
            "redteam_prompts": 8, "present": {"Feedback": True, "Paired": True}}
    return {"tolerance": {"abs": pub.ABS_TOLERANCE}, "meta": meta, "numbers": numbers}


def test_validity_is_a_published_number_that_verify_recomputes(run):
    published = published_run(run)
    item = next(n for n in published["numbers"] if n["key"] == "gate/dpo_aif/valid")
    assert item["formula"] == "feedback_gate" and item["sources"] == list(run.feedback.values())
    assert item["value"] == (0.0 if run.at_chance else 1.0)
    assert item["display"] == ("invalid" if run.at_chance else "valid") and item["n_records"] == 140
    assert all(r["status"] == "PASS" for r in pub.verify(published, run.root))
    # a forged validation file (records and manifest) that lifts the model above chance fails the gate's number
    write_jsonl(run.feedback["hhh"], canned_records(100, 85 if run.at_chance else 50))
    failed = {r["key"] for r in pub.verify(published, run.root) if r["status"] != "PASS"}
    assert "gate/dpo_aif/valid" in failed
    # the aggregate's marks and the records must agree
    summary = pd.read_csv(run.smk.output.summary).assign(valid=not run.at_chance)
    with pytest.raises(ValueError, match="aggregate and the formula disagree"):
        pub.build_numbers(summary, None, run.judged, run.feedback, {}, n_boot=200)


def test_the_paper_tables_figures_and_macros_set_the_condition_apart(run, tmp_path):
    published = published_run(run)
    numbers = {n["key"]: n for n in published["numbers"]}
    assert invalid_conditions(numbers) == ({"dpo_aif"} if run.at_chance else set())
    out = tmp_path / "generated"
    write_tables(published, out / "tables", None)
    tex = (out / "tables" / "safety_results.tex").read_text()
    aif_row = next(line for line in tex.splitlines() if line.startswith(r"dpo\_aif"))
    dpo_row = next(line for line in tex.splitlines() if line.startswith(r"dpo &"))
    safety = pd.read_csv(out / "tables" / "safety_results.csv")
    paired_tex = (out / "tables" / "paired_differences.tex").read_text()
    paired = pd.read_csv(out / "tables" / "paired_differences.csv")
    macros = macros_tex(published)
    if run.at_chance:
        mean = numbers["summary/dpo_aif/asr_jailbreak/mean"]["display"]
        cells = aif_row.count("&")  # one per metric column
        assert aif_row.count(r"\textcolor{gray}") == aif_row.count("$^\\dagger$") == cells >= 2 and mean in aif_row
        assert "gray" not in dpo_row and not safety[safety.condition == "dpo_aif"].valid.any()
        assert safety[safety.condition != "dpo_aif"].valid.all()
        assert all("gray" in line for line in paired_tex.splitlines() if r"dpo\_aif -" in line)
        assert not paired[paired.treatment == "dpo_aif"].valid.any()
        assert paired[paired.treatment != "dpo_aif"].valid.all()
        assert r"\AifValidfalse" in macros and r"\HasAifGatetrue" in macros
        assert r"\newcommand{\FeedbackGateReason}{the feedback model's accuracy on hhh is 0.50 (n=100)" in macros
        assert r"[0.40, 0.60] does not lie above chance (0.5)}" in macros
    else:
        assert "gray" not in tex and "gray" not in paired_tex and safety.valid.all() and paired.valid.all()
        assert r"\AifValidtrue" in macros and r"\HasAifGatetrue" in macros
        assert r"\newcommand{\FeedbackGateReason}{}" in macros
    written = write_figures(published, pd.read_csv(run.smk.output.summary), {}, {}, out / "figures", None)
    assert "rates_by_condition" in written and (out / "figures" / "rates_by_condition.png").is_file()


def test_a_run_without_the_ai_feedback_condition_has_no_gate(run):
    summary = pd.read_csv(run.smk.output.summary)
    summary = summary[summary.condition != "dpo_aif"]
    judged = {c: paths for c, paths in run.judged.items() if c != "dpo_aif"}
    numbers = pub.build_numbers(summary, None, judged, run.feedback, {}, n_boot=200)
    assert not any(n["key"].startswith("gate/") for n in numbers)
    published = {**published_run(run), "numbers": numbers}
    assert r"\HasAifGatefalse" in macros_tex(published) and r"\AifValidtrue" in macros_tex(published)
