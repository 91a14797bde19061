"""Metrics over judged records: per-seed rates, and mean, sd and a two-way bootstrap CI (seeds x prompts) per
condition."""

from __future__ import annotations

import numpy as np
import pandas as pd

# prompt set -> (metric name, judged field averaged)
SET_METRICS = {
    "jailbreak": ("asr_jailbreak", "attack_success"),
    "harmful_direct": ("asr_direct", "attack_success"),
    "benign": ("over_refusal", "refused"),
}


def judged_ok(judged: pd.DataFrame) -> pd.DataFrame:
    """Only records the judge labeled (status ok): a judge failure is neither safe nor unsafe."""
    ok = judged[judged["status"] == "ok"].copy()
    for field in ("attack_success", "refused"):
        ok[field] = ok[field].astype(float)
    return ok


def per_seed(judged: pd.DataFrame) -> pd.DataFrame:
    """One row per (condition, seed, metric) with the rate over that set's successfully judged prompts."""
    rows = []
    for (condition, seed, prompt_set), group in judged_ok(judged).groupby(["condition", "seed", "prompt_set"], sort=True):
        if prompt_set not in SET_METRICS:
            continue
        metric, field = SET_METRICS[prompt_set]
        rows.append({"condition": condition, "seed": int(seed), "metric": metric,
                     "value": float(group[field].mean()), "n_prompts": int(len(group))})
    return pd.DataFrame(rows)


def two_way_bootstrap(matrix: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the grand mean of a (seeds x prompts) matrix, resampling seeds and prompts independently;
    NaN cells (unjudged items) are left out of each mean."""
    rng = np.random.default_rng(seed)
    n_seeds, n_prompts = matrix.shape
    means = np.empty(n_boot)
    for b in range(n_boot):
        rows = rng.integers(0, n_seeds, n_seeds)
        cols = rng.integers(0, n_prompts, n_prompts)
        means[b] = np.nanmean(matrix[np.ix_(rows, cols)])  # a cell is NaN where the judge failed
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def summarize(judged: pd.DataFrame, n_boot: int = 2000) -> pd.DataFrame:
    """One row per (condition, metric): mean and sd over seeds, min/max, and the bootstrap 95% CI."""
    seeds = per_seed(judged)
    judged = judged_ok(judged)
    rows = []
    for (condition, metric), group in seeds.groupby(["condition", "metric"], sort=True):
        prompt_set = next(s for s, (m, _) in SET_METRICS.items() if m == metric)
        field = SET_METRICS[prompt_set][1]
        subset = judged[(judged.condition == condition) & (judged.prompt_set == prompt_set)]
        matrix = subset.pivot_table(index="seed", columns="prompt_id", values=field, aggfunc="mean").to_numpy(float)
        low, high = two_way_bootstrap(matrix, n_boot=n_boot)
        values = group["value"].to_numpy()
        rows.append({
            "condition": condition, "metric": metric, "mean": values.mean(),
            "sd": values.std(ddof=1) if len(values) > 1 else float("nan"),
            "min": values.min(), "max": values.max(), "ci95_low": low, "ci95_high": high,
            "n_seeds": len(values), "n_prompts": int(group["n_prompts"].iloc[0]),
        })
    return pd.DataFrame(rows)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (scipy's implementation)."""
    from scipy.stats import binomtest

    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(successes, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def calibration_table(records: list[dict], edges=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0)) -> list[dict]:
    """Binned confidence (max of the two option probabilities) against accuracy."""
    rows = []
    for low, high in zip(edges[:-1], edges[1:]):
        last = high == edges[-1]
        members = [r for r in records if low <= r["confidence"] < high or (last and r["confidence"] == high)]
        rows.append({
            "bin_low": low, "bin_high": high, "n": len(members),
            "mean_confidence": float(np.mean([r["confidence"] for r in members])) if members else None,
            "accuracy": float(np.mean([r["correct"] for r in members])) if members else None,
        })
    return rows


def validation_summary(records: list[dict]) -> dict:
    """Accuracy with its Wilson 95% CI, position consistency and a calibration table, from per-item records."""
    n = len(records)
    correct = sum(bool(r["correct"]) for r in records)
    low, high = wilson_interval(correct, n)
    return {
        "n": n, "correct": correct, "accuracy": correct / n if n else float("nan"),
        "accuracy_ci95_wilson": [low, high],
        "position_consistency": sum(bool(r["position_consistent"]) for r in records) / n if n else float("nan"),
        "calibration": calibration_table(records),
    }


def _matrix(judged: pd.DataFrame, condition: str, prompt_set: str, field: str) -> pd.DataFrame:
    subset = judged[(judged.condition == condition) & (judged.prompt_set == prompt_set)]
    return subset.pivot_table(index="seed", columns="prompt_id", values=field, aggfunc="mean")


def sign_flip_test(differences: np.ndarray) -> float:
    """Two-sided permutation p-value for a mean difference over seeds: every sign assignment when there are at
    most 16 seeds, else 100,000 random ones. With n seeds the smallest attainable p is 2 / 2**n."""
    from itertools import product

    differences = np.asarray(differences, float)
    observed = abs(differences.mean())
    n = len(differences)
    if n <= 16:
        signs = np.array(list(product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(0).choice((1.0, -1.0), size=(100_000, n))
    null = np.abs((signs * differences).mean(axis=1))
    return float((null >= observed - 1e-12).mean())


def minimum_detectable_effect(per_seed_differences: np.ndarray, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest mean difference a paired design with this many seeds detects at the given power (normal
    approximation with the observed sd of per-seed differences)."""
    from scipy.stats import norm

    values = np.asarray(per_seed_differences, float)
    if len(values) < 2:
        return float("nan")
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * values.std(ddof=1) / np.sqrt(len(values)))


def paired_difference(judged: pd.DataFrame, treatment: str, control: str, prompt_set: str, field: str,
                      n_boot: int = 2000) -> dict:
    """Treatment minus control on the same seeds and prompts: mean, two-way bootstrap CI, sign-flip permutation
    p-value over seeds, and the minimum detectable effect of the design."""
    judged = judged_ok(judged)
    a, b = _matrix(judged, treatment, prompt_set, field), _matrix(judged, control, prompt_set, field)
    seeds, prompts = a.index.intersection(b.index), a.columns.intersection(b.columns)
    diff = a.loc[seeds, prompts].to_numpy(float) - b.loc[seeds, prompts].to_numpy(float)
    per_seed_diff = np.nanmean(diff, axis=1)
    low, high = two_way_bootstrap(diff, n_boot=n_boot)
    return {
        "treatment": treatment, "control": control, "prompt_set": prompt_set,
        "difference": float(np.nanmean(diff)), "ci95_low": low, "ci95_high": high,
        "p_permutation": sign_flip_test(per_seed_diff), "mde_80": minimum_detectable_effect(per_seed_diff),
        "n_seeds": len(seeds), "n_prompts": len(prompts),
    }


def comparisons(conditions: list[str]) -> list[tuple[str, str]]:
    """(treatment, control) pairs worth reporting: every condition against base, and each CAI stage against SFT."""
    wanted = [(c, "base") for c in conditions if c != "base"]
    wanted += [("slcai", "sft"), ("dpo", "sft"), ("dpo_aif", "sft"), ("dpo_aif", "dpo")]
    return [(t, c) for t, c in dict.fromkeys(wanted) if t in conditions and c in conditions]


def paired_table(judged: pd.DataFrame, conditions: list[str], n_boot: int = 2000) -> pd.DataFrame:
    rows = []
    for prompt_set, (metric, field) in SET_METRICS.items():
        if prompt_set not in set(judged["prompt_set"]):
            continue
        for treatment, control in comparisons(conditions):
            rows.append({"metric": metric, **paired_difference(judged, treatment, control, prompt_set, field, n_boot)})
    return pd.DataFrame(rows)
