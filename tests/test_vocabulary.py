"""The pipeline's vocabulary and results layout (caibase.vocabulary, caibase.layout): published keys round-trip through
their builders and parser, and a condition added to the vocabulary flows from judged records to the paper's tables."""

import json

import pandas as pd
import pytest
from test_report import judged_records, manifests

from caibase import layout, report, tables
from caibase import published as pub
from caibase.metrics import paired_table, summarize
from caibase.vocabulary import (
    BASE,
    POLICIES,
    SFT,
    cost_key,
    dpo_key,
    feedback_gate_key,
    feedback_key,
    judge_gate_key,
    judges_key,
    paired_key,
    parse_key,
    parse_sweep_policy,
    scale_key,
    summary_key,
)

from conftest import REPO


def rebuilt(key: str) -> str:
    """A key built again from its parsed fields with its kind's builder."""
    k = parse_key(key)
    return {
        "summary": lambda: summary_key(k.condition, k.metric, k.statistic),
        "paired": lambda: paired_key(k.treatment, k.control, k.metric, k.statistic),
        "feedback": lambda: feedback_key(k.dataset, k.statistic),
        "dpo": lambda: dpo_key(k.pairs, k.column),
        "scale": lambda: scale_key(k.pairs, k.point, k.metric, k.statistic),
        "judges": lambda: judges_key(k.judge, k.dataset, k.statistic),
        "gate": lambda: feedback_gate_key(k.condition),
        "gate/judge": lambda: judge_gate_key(k.task, k.reference_set, k.statistic),
        "cost": lambda: cost_key(k.stage, k.statistic),
    }[k.kind]()


def test_every_published_key_round_trips():
    """Every key of the reference run's published.json parses, and its kind's builder gives it back."""
    keys = [item["key"] for item in json.loads((REPO / "paper" / "published.json").read_text())["numbers"]]
    assert keys and all(rebuilt(key) == key for key in keys)
    assert parse_key("dpo/revision/final/rewards/margins").column == "rewards/margins"
    assert parse_key("judges/hf:org/model/labels_v2/agreement").judge == "hf:org/model"
    assert parse_key("paired/dpo_aif/sft/asr_direct/ci95_low").conditions == ("dpo_aif", "sft")
    with pytest.raises(ValueError):
        parse_key("summary/dpo/asr_direct")


def test_layout_paths_are_the_pipelines():
    assert layout.judged_path("results/r", 2, "dpo_aif") == "results/r/seed2/eval/dpo_aif/judged.jsonl"
    assert layout.policy_adapters("results/r", 1, "dpo_n8") == [
        "results/r/seed1/sft/adapter", "results/r/seed1/dpo/revision/n8/adapter"]
    assert layout.policy_adapters("results/r", "{seed}", "dpo_aif") == [
        "results/r/seed{seed}/sft/adapter", "results/r/seed{seed}/dpo/ai-feedback/adapter"]
    assert layout.policy_adapters("results/r", 1, BASE) == [] and parse_sweep_policy("dpo_aif_n4") == ("ai-feedback", 4)
    assert layout.benchmark_stage(layout.benchmark_path("results/r", "judge/seed1/dpo")) == "judge"


def test_a_new_condition_flows_to_the_tables(tmp_path, monkeypatch):
    """A dummy condition, placed in the vocabulary's order after base, goes from judged records through the published
    numbers (recomputed by verify) to the safety and paired-difference tables."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report, "CONDITION_ORDER", [BASE, "dummy", *POLICIES[1:]])
    conditions = [SFT, BASE, "dummy"]
    judged = {c: [layout.judged_path("results/t", seed, c) for seed in (1, 2)] for c in conditions}
    for condition, paths in judged.items():
        for seed, path in zip((1, 2), paths):
            (tmp_path / path).parent.mkdir(parents=True)
            records = [r for r in judged_records(condition) if r["seed"] == seed]
            (tmp_path / path).write_text("".join(json.dumps(r) + "\n" for r in records))
    manifests(tmp_path)
    frame = pd.DataFrame([r for c in conditions for r in judged_records(c)]).rename(columns={"id": "prompt_id"})
    numbers = pub.build_numbers(summarize(frame, n_boot=200), paired_table(frame, conditions, n_boot=200), judged,
                                {}, {}, 200)
    published = {"meta": {"samples_per_prompt": 1}, "numbers": numbers}
    assert summary_key("dummy", "asr_jailbreak", "mean") in {item["key"] for item in numbers}
    assert all(result["status"] == "PASS" for result in pub.verify(published, tmp_path))

    written = tables.write_tables(published, tmp_path / "tables", None)
    assert {"safety_results", "paired_differences"} <= set(written)
    safety = pd.read_csv(tmp_path / "tables" / "safety_results.csv")
    assert list(dict.fromkeys(safety.condition)) == [BASE, "dummy", SFT]
    assert "dummy" in (tmp_path / "tables" / "safety_results.tex").read_text()
    paired = pd.read_csv(tmp_path / "tables" / "paired_differences.csv")
    assert ("dummy", BASE) in set(zip(paired.treatment, paired.control))
