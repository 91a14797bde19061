"""The data-scale sweep: nested subsamples, the step schedule, and the tables built from judged records."""

import pandas as pd
import pytest

from caibase.data_scale import data_scale_tables, nested_subsample, scaled_schedule
from caibase.vocabulary import parse_sweep_policy, sweep_policy


def test_nested_subsamples_are_nested():
    pool = [{"id": f"p{i}"} for i in range(50)]
    for seed in (1, 2):
        ids = {n: [p["id"] for p in nested_subsample(pool, n, seed)] for n in (5, 10, 25, 50)}
        assert [len(v) for v in ids.values()] == [5, 10, 25, 50]
        for small, large in ((5, 10), (10, 25), (25, 50)):
            assert ids[large][:small] == ids[small]
        assert sorted(ids[50]) == sorted(p["id"] for p in pool)
        assert ids[10] == [p["id"] for p in nested_subsample(pool, 10, seed)]  # seeded
    assert nested_subsample(pool, 10, 1) != nested_subsample(pool, 10, 2)
    assert nested_subsample(pool, 10, 1) != pool[:10]  # a permutation, not the file order
    assert len(nested_subsample(pool, 80, 1)) == 50  # capped to the pool


def test_sweep_policy_names_round_trip():
    assert sweep_policy("revision", 8) == "dpo_n8" and sweep_policy("ai-feedback", 100) == "dpo_aif_n100"
    assert parse_sweep_policy("dpo_n8") == ("revision", 8)
    assert parse_sweep_policy("dpo_aif_n100") == ("ai-feedback", 100)
    for policy in ("dpo", "dpo_aif", "sft", "dpo_nx", "slcai_n3"):
        assert parse_sweep_policy(policy) is None


def test_same_epochs_scales_steps_and_same_steps_keeps_them():
    cfg = {"max_steps": 24, "warmup_steps": 4, "eval_steps": 10, "batch_size": 2}
    assert scaled_schedule(cfg, 8, 26, "same_epochs") == {**cfg, "max_steps": 8, "warmup_steps": 1, "eval_steps": 8}
    assert scaled_schedule(cfg, 1, 100, "same_epochs")["max_steps"] == 1
    assert scaled_schedule(cfg, 1, 100, "same_epochs")["warmup_steps"] == 0
    assert scaled_schedule(cfg, 26, 26, "same_epochs") == cfg
    assert scaled_schedule(cfg, 8, 26, "same_steps") == cfg


def judged_records(policy, seed, attack_success):
    return [{"condition": policy, "seed": seed, "prompt_set": "jailbreak", "prompt_id": f"j{i}", "status": "ok",
             "attack_success": bool(a), "refused": not a} for i, a in enumerate(attack_success)]


def test_data_scale_tables_hand_computed():
    judged = pd.DataFrame(
        judged_records("sft", 1, [1, 1, 1, 1]) + judged_records("sft", 2, [1, 1, 1, 0])
        + judged_records("dpo_n2", 1, [1, 0, 1, 1]) + judged_records("dpo_n2", 2, [0, 0, 1, 1])
        + judged_records("dpo", 1, [0, 0, 0, 1]) + judged_records("dpo", 2, [0, 0, 0, 0])
    )
    points = pd.DataFrame([
        {"pairs": "revision", "point": "sft", "seed": s, "policy": "sft", "n_pairs": 0} for s in (1, 2)
    ] + [
        {"pairs": "revision", "point": "n2", "seed": s, "policy": "dpo_n2", "n_pairs": 2} for s in (1, 2)
    ] + [
        {"pairs": "revision", "point": "full", "seed": 1, "policy": "dpo", "n_pairs": 9},
        {"pairs": "revision", "point": "full", "seed": 2, "policy": "dpo", "n_pairs": 8},
    ])
    per_seed, summary = data_scale_tables(judged, points, n_boot=200)
    assert {"pairs", "n_pairs", "seed", "set", "metric", "value"} <= set(per_seed.columns)
    assert set(per_seed["metric"]) == set(summary["metric"]) == {"asr_jailbreak", "asr_jailbreak_at_k"}
    at_k = per_seed[per_seed.metric == "asr_jailbreak_at_k"].reset_index(drop=True)
    per_seed = per_seed[per_seed.metric == "asr_jailbreak"].reset_index(drop=True)
    assert list(at_k["value"]) == list(per_seed["value"])  # one sample per prompt: ASR@1 is the per-attempt rate
    summary = summary[summary.metric == "asr_jailbreak"].reset_index(drop=True)
    assert list(per_seed["value"]) == [1.0, 0.75, 0.75, 0.5, 0.0, 0.25]  # sorted by n_pairs, then seed
    assert list(per_seed["n_pairs"]) == [0, 0, 2, 2, 8, 9]
    assert list(summary["point"]) == ["sft", "n2", "full"]
    assert list(summary["mean"]) == pytest.approx([0.875, 0.625, 0.125])
    assert list(summary["n_pairs_min"]) == [0, 2, 8] and list(summary["n_pairs_max"]) == [0, 2, 9]
    assert (summary["set"] == "jailbreak").all() and (summary["metric"] == "asr_jailbreak").all()
    assert (summary["ci95_low"] <= summary["mean"]).all() and (summary["mean"] <= summary["ci95_high"]).all()
    assert (summary["n_seeds"] == 2).all()
