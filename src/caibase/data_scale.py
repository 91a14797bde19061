"""The data-scale sweep: DPO on nested subsamples of one seed's preference-pair pool, so the ASR curve over the
number of pairs answers "at what data scale does DPO start to help?".

Every point of a seed draws from the same pool (the training pairs left after the held-out dev split) through one
seeded permutation, so the n=a subsample is a prefix of the n=b subsample for a < b. A point asking for more pairs
than the pool holds is capped to the pool, logged, and left out of the tables (the full-pool point covers it).

    snakemake --cores 2 results/embedded-cpu/tables/data_scale.csv
"""

from __future__ import annotations

import math
import random

import pandas as pd

from caibase.metrics import METRICS, per_seed, summarize

# Sweep points are named `<policy>_n<N>` (caibase.vocabulary: sweep_policy, parse_sweep_policy).


def nested_subsample(pool: list[dict], n: int, seed: int) -> list[dict]:
    """The first `n` pairs of one seeded permutation of `pool` (all of it when n >= len(pool)): for a fixed pool
    and seed, a smaller subsample is always a prefix of a larger one."""
    order = list(range(len(pool)))
    random.Random(f"{seed}:data-scale").shuffle(order)
    return [pool[i] for i in order[:n]]


def scaled_schedule(cfg: dict, n_pairs: int, pool_size: int, schedule: str) -> dict:
    """Trainer settings for a sweep point. `same_steps` keeps the full-pool settings (same compute, more epochs on
    fewer pairs); `same_epochs` scales max_steps and warmup by n/pool, so every point sees its pairs as many times
    as the full-pool run does."""
    if schedule == "same_steps" or n_pairs >= pool_size:
        return dict(cfg)
    fraction = n_pairs / pool_size
    max_steps = max(1, math.ceil(cfg["max_steps"] * fraction))
    warmup_steps = min(round(cfg.get("warmup_steps", 0) * fraction), max_steps - 1)
    return {**cfg, "max_steps": max_steps, "warmup_steps": warmup_steps,
            "eval_steps": min(cfg.get("eval_steps", 10), max_steps)}


def data_scale_tables(judged: pd.DataFrame, points: pd.DataFrame,
                      n_boot: int = 2000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-seed values and a per-point summary of the sweep.

    judged: judged records (columns as `caibase.metrics.summarize` expects) of every policy in `points`.
    points: one row per (pairs, point, seed, policy, n_pairs): `point` is `n<N>`, `full` (the whole pool) or `sft`
    (no DPO, n_pairs 0). Returns (per seed: pairs, point, n_pairs, seed, set, metric, value, n_prompts, policy;
    summary: pairs, point, n_pairs_min, n_pairs_max, set, metric, mean, sd, ci95_low, ci95_high, n_seeds).
    """
    set_of_metric = {metric.name: metric.prompt_set for metric in METRICS}
    values = per_seed(judged).rename(columns={"condition": "policy"})
    values["set"] = values["metric"].map(set_of_metric)
    long = points.merge(values, on=["policy", "seed"], how="inner")
    long = long[["pairs", "point", "n_pairs", "seed", "set", "metric", "value", "n_prompts", "policy"]]
    summaries = []
    for (pairs, point), group in points.groupby(["pairs", "point"], sort=False):
        seeds = set(group["seed"])
        subset = judged[judged["condition"].isin(set(group["policy"])) & judged["seed"].isin(seeds)]
        summary = summarize(subset.assign(condition=point), n_boot=n_boot)
        summary.insert(0, "n_pairs_max", int(group["n_pairs"].max()))
        summary.insert(0, "n_pairs_min", int(group["n_pairs"].min()))
        summary.insert(0, "pairs", pairs)
        summaries.append(summary.rename(columns={"condition": "point"}))
    summary = pd.concat(summaries, ignore_index=True)
    summary.insert(summary.columns.get_loc("metric"), "set", summary["metric"].map(set_of_metric))
    order = ["pairs", "point", "n_pairs_min", "n_pairs_max", "set", "metric", "mean", "sd", "ci95_low", "ci95_high",
             "n_seeds", "n_prompts"]
    long = long.sort_values(["pairs", "n_pairs", "point", "seed", "metric"], kind="stable").reset_index(drop=True)
    summary = summary[order].sort_values(["pairs", "n_pairs_min", "metric"], kind="stable").reset_index(drop=True)
    return long, summary
