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
    assert empty["status"] == "skipped_degenerate" and empty["label"] is None and empty["attack_success"] is None


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
    summary = summarize(frame, n_boot=300).query("metric == 'asr_jailbreak'").set_index("condition")
    assert abs(summary.loc["base", "mean"] - 0.8) < 0.1 and abs(summary.loc["dpo", "mean"] - 0.2) < 0.1
    assert summary.loc["base", "ci95_low"] < summary.loc["base", "mean"] < summary.loc["base", "ci95_high"]
    seeds = per_seed(frame)
    base_seed1 = seeds[(seeds.condition == "base") & (seeds.seed == 1) & (seeds.metric == "asr_jailbreak")]
    assert base_seed1.n_prompts.item() == 45


def test_two_way_bootstrap_width_grows_with_seed_variance():
    rng = np.random.default_rng(1)
    flat = (rng.random((5, 40)) < 0.5).astype(float)
    shifted = flat.copy()
    shifted[:2] = 1.0
    low_a, high_a = two_way_bootstrap(flat, n_boot=500)
    low_b, high_b = two_way_bootstrap(shifted, n_boot=500)
    assert high_b - low_b > high_a - low_a


def simulate(n_seeds, n_prompts, effect, rng):
    """Binary outcomes with seed and prompt effects; returns a judged frame for conditions 'control' and 'treat'."""
    prompt_logit = rng.normal(0, 1.0, n_prompts)
    rows = []
    for seed in range(n_seeds):
        seed_shift = rng.normal(0, 0.3)
        for condition, shift in (("control", 0.0), ("treat", effect)):
            p = 1 / (1 + np.exp(-(prompt_logit + seed_shift + shift)))
            for j, success in enumerate(rng.random(n_prompts) < p):
                rows.append({"condition": condition, "seed": seed, "prompt_set": "jailbreak", "prompt_id": f"p{j}",
                             "status": "ok", "attack_success": bool(success), "refused": not success})
    return pd.DataFrame(rows), prompt_logit


def test_two_way_bootstrap_covers_the_truth_and_is_not_far_too_wide():
    """Simulated seeds x prompts data with seed, prompt and Bernoulli noise. The pigeonhole (two-way) bootstrap is
    known to be conservative, since the cell noise enters through both the seed and the prompt resampling: the test
    requires at least nominal coverage and a half-width no larger than twice the estimator's true 95% half-width."""
    rng = np.random.default_rng(7)
    population = rng.normal(0, 1.0, 400)
    truth = np.mean([np.mean(1 / (1 + np.exp(-(population + s)))) for s in rng.normal(0, 0.3, 4000)])
    estimates, half_widths, covered, trials = [], [], 0, 150
    for _ in range(trials):
        prompts = population[rng.integers(0, 400, 30)]
        p = 1 / (1 + np.exp(-(prompts[None, :] + rng.normal(0, 0.3, (5, 1)))))
        matrix = (rng.random(p.shape) < p).astype(float)
        low, high = two_way_bootstrap(matrix, n_boot=300, seed=int(rng.integers(1 << 30)))
        covered += low <= truth <= high
        estimates.append(matrix.mean())
        half_widths.append((high - low) / 2)
    assert covered / trials >= 0.93
    assert np.mean(half_widths) <= 2 * 1.96 * np.std(estimates)


def test_paired_test_detects_a_planted_effect_and_not_a_null():
    from caibase.metrics import paired_difference

    rng = np.random.default_rng(3)
    planted, _ = simulate(10, 40, effect=-1.0, rng=rng)
    result = paired_difference(planted, "treat", "control", "jailbreak", "attack_success", n_boot=300)
    assert result["difference"] < -0.1 and result["ci95_high"] < 0 and result["p_permutation"] < 0.01
    null, _ = simulate(10, 40, effect=0.0, rng=rng)
    result = paired_difference(null, "treat", "control", "jailbreak", "attack_success", n_boot=300)
    assert result["ci95_low"] < 0 < result["ci95_high"] and result["p_permutation"] > 0.05
    assert result["mde_80"] > 0 and result["n_seeds"] == 10


def test_sign_flip_floor_with_few_seeds():
    from caibase.metrics import sign_flip_test

    assert sign_flip_test(np.array([0.5, 0.4, 0.6])) == 0.25  # 3 seeds can never reach p < 0.25
    assert sign_flip_test(np.zeros(4)) == 1.0


def test_canary_check_passes_a_working_judge_and_trips_a_broken_one():
    import pytest

    from caibase.judges import canary_check

    result = canary_check(RefusalStringJudge())
    assert result["n"] >= 12 and result["agreement"] == 1.0

    class AlwaysCompliance(RefusalStringJudge):
        def _judge_one(self, item, task):
            return super()._judge_one({**item, "response": "Sure."}, task)

    with pytest.raises(RuntimeError, match="canary set"):
        canary_check(AlwaysCompliance())


def test_interval_method_follows_the_design_not_the_observed_values():
    """One seed: a 0/1 metric gets a Wilson interval; with two samples per prompt the per-attempt rate is a fraction
    per prompt and gets the bootstrap, even where every prompt's two samples happen to agree."""
    one = judged_frame({"base": 0.5}).query("seed == 1").assign(sample=0)
    two = pd.concat([one, one.assign(sample=1)])  # both samples agree: per-prompt values are still 0 or 1
    methods = {name: summarize(frame, n_boot=200).set_index("metric")["ci_method"] for name, frame in
               (("one", one), ("two", two))}
    assert methods["one"]["asr_jailbreak"] == "wilson" and methods["one"]["asr_jailbreak_at_k"] == "wilson"
    assert methods["two"]["asr_jailbreak"] == "bootstrap_seeds_prompts"
    assert methods["two"]["asr_jailbreak_at_k"] == "wilson"  # any of k samples is 0/1 by definition
