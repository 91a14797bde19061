"""The cost estimate's arithmetic: the work a config asks for per seed, and hours from benchmark throughputs."""

import importlib.util

import pytest

from conftest import REPO, load_config

spec = importlib.util.spec_from_file_location("estimate_cost", REPO / "benchmarks" / "estimate_cost.py")
estimate_cost = importlib.util.module_from_spec(spec)
spec.loader.exec_module(estimate_cost)


def test_smoke_workload_matches_what_the_smoke_run_does():
    config = load_config("smoke.yaml")
    work = estimate_cost.workload(config)
    assert work["redteam_prompts"] == 8 + 4  # redteam_limit + redteam_hh_rlhf, as in the smoke run's revisions
    assert work["eval_prompts"] == 3 * 6 + 2 * 4  # three eval sets at eval_limit 6, helpful and style at 4
    assert work["generated_tokens"] == {"generate_redteam": 12 * 2 * 16, "critique_revise": 12 * 1 * 2 * 16,
                                        "generate_eval": 5 * 26 * 16}
    assert work["sft_sequences"] == 2 * 3 * 4 and work["dpo_pairs"] == 2 * 3 * 4


def test_hours_follow_the_formula_and_count_every_process():
    config = load_config("scale.yaml")
    generation = {"engine": {"batch_8": {"tokens_per_s": 50.0}, "batch_32": {"tokens_per_s": 100.0}}}
    train = {"sft": {"steps_per_s": 0.5, "settings": {"batch_size": 4}},
             "dpo": {"steps_per_s": 0.25, "settings": {"batch_size": 2, "gradient_accumulation_steps": 2}}}
    row = estimate_cost.estimate(config, generation, train)
    work, ratio = row["workload"], 3_212_749_824 / 134_515_008
    assert work["dpo_pairs"] == 2 * 313 * 8 * 1 * 4  # two DPO runs x steps x global batch (4 processes)
    expected = (sum(work["generated_tokens"].values()) / 100 + work["sft_sequences"] / 2 + work["dpo_pairs"] / 1)
    assert row["estimated_hours_per_seed_total"] == pytest.approx(expected * ratio / 3600)
    assert row["estimated_hours_all_seeds"] == pytest.approx(3 * row["estimated_hours_per_seed_total"])
    bigger = estimate_cost.estimate(config, generation, train, sweep_pairs=10_000)
    assert bigger["workload"]["redteam_prompts"] == 10_000 and bigger["estimated_hours_per_seed"]["generation"] > (
        row["estimated_hours_per_seed"]["generation"])
