"""The aggregate rule's statistics as they were before vectorizing (issue 17): a Python loop over the bootstrap
resamples (np.ix_, np.nanmean) and pivots recomputed per metric and pair. Kept, outside the library, as the
reference the vectorized `caibase.metrics` must equal for the same seed: `bench_stats.py` times it against the library
on the reference run's records and `tests/test_stats.py` compares them on synthetic ones."""

from __future__ import annotations

import warnings
from itertools import product

import numpy as np
import pandas as pd

from caibase.metrics import (
    METRIC_BY_NAME,
    METRICS,
    REFERENCE_CONDITIONS,
    Metric,
    comparisons,
    is_binary,
    judged_ok,
    metric_matrix,
    minimum_detectable_effect,
    wilson_interval,
)


def loop_means(matrix: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every resample's mean, and the row and column indices each resample drew (n_boot x n_seeds, n_boot x
    n_prompts)."""
    rng = np.random.default_rng(seed)
    n_seeds, n_prompts = matrix.shape
    means, rows_drawn, cols_drawn = np.empty(n_boot), [], []
    for b in range(n_boot):
        rows = rng.integers(0, n_seeds, n_seeds)
        cols = rng.integers(0, n_prompts, n_prompts)
        rows_drawn.append(rows)
        cols_drawn.append(cols)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "Mean of empty slice": a resample with no judged cell
            means[b] = np.nanmean(matrix[np.ix_(rows, cols)])  # a cell is NaN where the judge failed
    return means, np.array(rows_drawn).reshape(n_boot, n_seeds), np.array(cols_drawn).reshape(n_boot, n_prompts)


def loop_bootstrap(matrix: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    means, _, _ = loop_means(matrix, n_boot, seed)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def loop_sign_flip(differences) -> float:
    differences = np.asarray(differences, float)
    observed = abs(differences.mean())
    n = len(differences)
    if n <= 16:
        signs = np.array(list(product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(0).choice((1.0, -1.0), size=(100_000, n))
    null = np.abs((signs * differences).mean(axis=1))
    return float((null >= observed - 1e-12).mean())


def loop_per_seed(judged: pd.DataFrame) -> pd.DataFrame:
    judged = judged_ok(judged)
    rows = []
    for condition in sorted(set(judged["condition"])):
        for metric in METRICS:
            binary = is_binary(metric, judged)
            matrix = metric_matrix(judged, condition, metric)
            for seed, values in matrix.iterrows():
                values = values.to_numpy(float)
                values = values[~np.isnan(values)]
                low, high = (wilson_interval(int(values.sum()), len(values)) if binary
                             else (float("nan"), float("nan")))
                rows.append({"condition": condition, "seed": int(seed), "metric": metric.name,
                             "value": float(values.mean()), "n_prompts": len(values),
                             "wilson_low": low, "wilson_high": high})
    return pd.DataFrame(rows)


def loop_summarize(judged: pd.DataFrame, n_boot: int = 2000) -> pd.DataFrame:
    seeds = loop_per_seed(judged)
    judged = judged_ok(judged)
    rows = []
    for (condition, name), group in seeds.groupby(["condition", "metric"], sort=True):
        matrix = metric_matrix(judged, condition, METRIC_BY_NAME[name]).to_numpy(float)
        values = group["value"].to_numpy()
        if len(values) == 1 and is_binary(METRIC_BY_NAME[name], judged):
            low, high, method = group["wilson_low"].item(), group["wilson_high"].item(), "wilson"
        else:
            (low, high), method = loop_bootstrap(matrix, n_boot=n_boot), "bootstrap_seeds_prompts"
        rows.append({
            "condition": condition, "reference": condition in REFERENCE_CONDITIONS, "metric": name,
            "mean": values.mean(), "sd": values.std(ddof=1) if len(values) > 1 else float("nan"),
            "min": values.min(), "max": values.max(), "ci95_low": low, "ci95_high": high, "ci_method": method,
            "n_seeds": len(values), "n_prompts": int(group["n_prompts"].max()),
        })
    return pd.DataFrame(rows)


def loop_paired_table(judged: pd.DataFrame, conditions: list[str], n_boot: int = 2000) -> pd.DataFrame:
    rows, ok = [], judged_ok(judged)
    for metric in METRICS:
        for treatment, control in comparisons(conditions):
            if metric_matrix(ok, treatment, metric).empty or metric_matrix(ok, control, metric).empty:
                continue
            m = Metric("", metric.prompt_set, metric.field, metric.category, metric.per_prompt)
            a, b = metric_matrix(ok, treatment, m), metric_matrix(ok, control, m)
            seeds, prompts = a.index.intersection(b.index), a.columns.intersection(b.columns)
            diff = a.loc[seeds, prompts].to_numpy(float) - b.loc[seeds, prompts].to_numpy(float)
            per_seed_diff = np.nanmean(diff, axis=1)
            low, high = loop_bootstrap(diff, n_boot=n_boot)
            rows.append({"metric": metric.name, "treatment": treatment, "control": control,
                         "prompt_set": metric.prompt_set, "difference": float(np.nanmean(diff)),
                         "ci95_low": low, "ci95_high": high, "p_permutation": loop_sign_flip(per_seed_diff),
                         "mde_80": minimum_detectable_effect(per_seed_diff), "n_seeds": len(seeds),
                         "n_prompts": len(prompts)})
    return pd.DataFrame(rows)
