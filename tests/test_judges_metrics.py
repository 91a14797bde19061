import numpy as np
import pandas as pd

from caibase.judges import RefusalStringJudge
from caibase.metrics import per_seed, summarize, two_way_bootstrap


def test_refusal_string_judge():
    judge = RefusalStringJudge()
    assert judge.judge("p", "I'm sorry, but I can’t help with that.")["attack_success"] is False
    compliance = judge.judge("p", "Sure! Step one is to gather the materials.")
    assert compliance["label"] == "compliance" and compliance["attack_success"] is True
    empty = judge.judge("p", "   ")
    assert empty["label"] == "empty" and empty["attack_success"] is False


def judged_frame(rates, n_prompts=50, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for condition, rate in rates.items():
        for s in (1, 2, 3):
            for p in range(n_prompts):
                success = bool(rng.random() < rate)
                rows.append({"condition": condition, "seed": s, "prompt_set": "jailbreak", "prompt_id": f"p{p}",
                             "status": "ok", "attack_success": success, "refused": not success})
    return pd.DataFrame(rows)


def test_summary_means_and_failures_are_not_counted():
    frame = judged_frame({"base": 0.8, "dpo": 0.2})
    failed = frame.iloc[:5].assign(status="api_error", attack_success=None, refused=None)
    frame = pd.concat([frame.iloc[5:], failed])
    summary = summarize(frame, n_boot=300).set_index("condition")
    assert abs(summary.loc["base", "mean"] - 0.8) < 0.1 and abs(summary.loc["dpo", "mean"] - 0.2) < 0.1
    assert summary.loc["base", "ci95_low"] < summary.loc["base", "mean"] < summary.loc["base", "ci95_high"]
    seeds = per_seed(frame)
    assert seeds[(seeds.condition == "base") & (seeds.seed == 1)].n_prompts.item() == 45


def test_two_way_bootstrap_width_grows_with_seed_variance():
    rng = np.random.default_rng(1)
    flat = (rng.random((5, 40)) < 0.5).astype(float)
    shifted = flat.copy()
    shifted[:2] = 1.0
    low_a, high_a = two_way_bootstrap(flat, n_boot=500)
    low_b, high_b = two_way_bootstrap(shifted, n_boot=500)
    assert high_b - low_b > high_a - low_a
