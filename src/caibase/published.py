"""Published numbers: every number the write-up reports, with the raw per-item records it comes from and the named
formula (from FORMULAS) that computes it, so a reviewer can recompute each one without retraining anything.

    snakemake --cores 1 verify --allowed-rules verify --forcerun verify    # what `make verify` runs

A published number is one entry of `published.json`:

    {"key": "summary/dpo/asr_jailbreak/mean", "value": 0.979, "display": "0.98", "macro": "SummaryDpoAsrJailbreakMean",
     "formula": "condition_summary", "args": {"condition": "dpo", "metric": "asr_jailbreak", ...},
     "sources": ["results/embedded-cpu/seed1/eval/dpo/judged.jsonl", ...], "n_records": 144}

`sources` are paths relative to the Snakemake working directory; `n_records` is how many raw records the formula
read, so a deleted record fails verification even when it would not move the value.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from caibase.artifacts import check_manifest, read_records
from caibase.cost import STATISTICS as COST_STATISTICS
from caibase.cost import TOTAL, stage_costs
from caibase.feedback_gate import AIF_CONDITION, CHANCE, gated
from caibase.feedback_gate import feedback_gate as gate_of
from caibase.judge_gate import REFUSAL_TASK, SET_STATISTICS, gates_from_records, metric_validity
from caibase.judge_validation import agreement_stats, pairwise_stats
from caibase.layout import benchmark_stage
from caibase.metrics import METRIC_BY_NAME, paired_table, summarize, validation_summary
from caibase.records import judged_frame
from caibase.vocabulary import (
    cost_key,
    dpo_key,
    feedback_gate_key,
    feedback_key,
    judge_gate_key,
    judges_key,
    paired_key,
    scale_key,
    summary_key,
)

# Recomputed values must equal the published ones to this absolute tolerance (the formulas are deterministic; the
# slack only absorbs floating-point summation order across machines).
ABS_TOLERANCE = 1e-6

FORMULAS: dict[str, Callable[..., tuple[float, int]]] = {}


def formula(name: str):
    """Register a formula: f(sources, **args) -> (value, number of raw records read)."""
    def register(fn):
        FORMULAS[name] = fn
        return fn
    return register


class MissingRecordError(Exception):
    """A source file named by a published number does not exist."""


def _stamp(sources) -> tuple:
    """The cache key of a list of files: absolute path, size and mtime of each (a changed file is read again)."""
    stamps = []
    for path in sources:
        if not os.path.exists(path):
            raise MissingRecordError(f"{path}: source file missing")
        stat = os.stat(path)
        stamps.append((os.path.abspath(path), stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


def _jsonl(path: str) -> tuple[dict, ...]:
    return _read_jsonl(_stamp([path])[0])


@functools.cache
def _read_jsonl(stamp: tuple) -> tuple[dict, ...]:
    return tuple(read_records(stamp[0]))  # checked against its manifest


def _judged(stamps: tuple) -> pd.DataFrame:
    return judged_frame(record for stamp in stamps for record in _read_jsonl(stamp))


@functools.cache
def _summary_of(stamps: tuple, n_boot: int) -> pd.DataFrame:
    return summarize(_judged(stamps), n_boot=n_boot)


@formula("condition_summary")
def condition_summary(sources, condition: str, metric: str, statistic: str, n_boot: int) -> tuple[float, int]:
    """A statistic (mean, sd, ci95_low, ci95_high) of one condition's metric over seeds and prompts, from its judged
    records (caibase.metrics.summarize: per-seed rates, two-way bootstrap over seeds x prompts)."""
    table = _summary_of(_stamp(sources), n_boot)
    row = table[(table.condition == condition) & (table.metric == metric)]
    if len(row) != 1:
        raise KeyError(f"metric {metric!r} of condition {condition!r} not computable from {list(sources)}")
    return float(row[statistic].iloc[0]), sum(len(_jsonl(path)) for path in sources)


@functools.cache
def _sweep_summary_of(stamps: tuple, point: str, eval_sets: tuple, n_boot: int) -> pd.DataFrame:
    judged = _judged(stamps)
    return summarize(judged[judged.prompt_set.isin(eval_sets)].assign(condition=point), n_boot=n_boot)


@formula("sweep_point_summary")
def sweep_point_summary(sources, point: str, metric: str, statistic: str, eval_sets: list[str],
                        n_boot: int) -> tuple[float, int]:
    """A statistic (mean, ci95_low, ci95_high) of one data-scale point's metric: the judged records of the point's
    policy on every seed (its sources), restricted to the sweep's evaluation sets, as one condition
    (caibase.metrics.summarize, as caibase.data_scale.data_scale_tables computes it)."""
    table = _sweep_summary_of(_stamp(sources), point, tuple(eval_sets), n_boot)
    row = table[table.metric == metric]
    if len(row) != 1:
        raise KeyError(f"metric {metric!r} of data-scale point {point!r} not computable from {list(sources)}")
    return float(row[statistic].iloc[0]), sum(len(_jsonl(path)) for path in sources)


@formula("judge_agreement")
def judge_agreement(sources, judge: str, dataset: str, statistic: str) -> tuple[float, int]:
    """One judge against human labels on one dataset, from the per-item judge-validation records
    (caibase.judge_validation.agreement_stats: n, agreement, agreement_ci95_low/high, false_positive_rate,
    false_negative_rate, cohen_kappa; pairwise_stats: pairwise_agreement on HH-RLHF pairs)."""
    records = [r for path in sources for r in _jsonl(path) if r["judge"] == judge and r["dataset"] == dataset]
    if not records:
        raise KeyError(f"no judge-validation records of judge {judge!r} on {dataset!r} in {list(sources)}")
    if statistic == "pairwise_agreement":
        return float(pairwise_stats(records)[statistic]), len(records)
    stats = agreement_stats([r["human_label"] for r in records],
                            [r["label"] if r["status"] == "ok" else None for r in records])
    return float(stats[statistic]), len(records)


@functools.cache
def _paired_of(stamps: tuple, treatment: str, control: str, n_boot: int) -> pd.DataFrame:
    return paired_table(_judged(stamps), [control, treatment], n_boot=n_boot)


@formula("paired_difference")
def paired_difference(sources, treatment: str, control: str, metric: str, statistic: str,
                      n_boot: int) -> tuple[float, int]:
    """Treatment minus control on the same seeds and prompts (caibase.metrics.paired_difference): difference,
    ci95_low, ci95_high, p_permutation or mde_80."""
    table = _paired_of(_stamp(sources), treatment, control, n_boot)
    row = table[(table.treatment == treatment) & (table.control == control) & (table.metric == metric)]
    if len(row) != 1:
        raise KeyError(f"paired difference {treatment}-{control} on {metric!r} not computable from {list(sources)}")
    return float(row[statistic].iloc[0]), sum(len(_jsonl(path)) for path in sources)


def expected_calibration_error(records: list[dict]) -> float:
    """Sum over confidence bins of (bin share) x |accuracy - mean confidence| (bins of caibase.metrics)."""
    table = validation_summary(records)["calibration"]
    n = sum(row["n"] for row in table)
    return float(sum(row["n"] / n * abs(row["accuracy"] - row["mean_confidence"]) for row in table if row["n"]))


@formula("feedback_validation")
def feedback_validation(sources, statistic: str) -> tuple[float, int]:
    """Feedback-model validation from per-item records (caibase.metrics.validation_summary): accuracy,
    accuracy_ci95_low/high (Wilson), position_consistency, n, or expected_calibration_error."""
    records = [record for path in sources for record in _jsonl(path)]
    if statistic == "expected_calibration_error":
        return expected_calibration_error(records), len(records)
    summary = validation_summary(records)
    low, high = summary["accuracy_ci95_wilson"]
    value = {**summary, "accuracy_ci95_low": low, "accuracy_ci95_high": high}[statistic]
    return float(value), len(records)


@formula("feedback_gate")
def feedback_gate(sources, sets: list[str], statistic: str = "valid", chance: float = CHANCE) -> tuple[float, int]:
    """The feedback-model gate (caibase.feedback_gate) from the per-item validation records, one file per set
    (`sets` names them in order): 1 (valid) when the Wilson 95% lower bound of the accuracy lies above `chance` on
    every set, else 0; the AI-feedback condition is a result only when it is 1."""
    if len(sets) != len(sources):
        raise ValueError(f"feedback_gate: {len(sets)} set names for {len(sources)} record files")
    records = {name: list(_jsonl(path)) for name, path in zip(sets, sources)}
    gate = gate_of({name: validation_summary(rows) for name, rows in records.items()}, chance)
    return float(getattr(gate, statistic)), sum(len(rows) for rows in records.values())


@formula("judge_gate")
def judge_gate(sources, task: str, judge: str, sets: list[str], statistic: str = "valid",
               reference_set: str | None = None) -> tuple[float, int]:
    """The judge gate of one task (caibase.judge_gate) from the per-item records: for the refusal task the judge's
    agreement with each labeled set in `sets` (judge-validation records) against the majority-label share, for a
    score task its win share on the score canary against chance. `valid`: 1 when every set's Wilson 95% lower bound
    lies above its baseline, else 0 (the task's metrics are a result only when it is 1); or one set's n, rate,
    ci95_low, ci95_high or baseline."""
    records = [r for path in sources for r in _jsonl(path)]
    refusal = task == REFUSAL_TASK
    gate = gates_from_records(records if refusal else [], [] if refusal else records, {task: judge},
                              sets if refusal else [])[task]
    if list(gate.sets) != list(sets):
        raise KeyError(f"judge_gate: sets {list(sets)} of task {task!r}, but the records give {list(gate.sets)}")
    if statistic == "valid":
        return float(gate.valid), sum(s["n"] for s in gate.sets.values())
    result = gate.sets[reference_set]
    return float(result[statistic]), result["n"]


def _history(path: str) -> pd.DataFrame:
    if not os.path.exists(path):
        raise MissingRecordError(f"{path}: source file missing")
    check_manifest(path)
    return pd.read_csv(path)


@formula("history_final")
def history_final(sources, column: str) -> tuple[float, int]:
    """Mean over seeds (one history.csv each) of the last logged value of a training-log column."""
    finals, rows = [], 0
    for path in sources:
        history = _history(path)
        rows += len(history)
        logged = history[column].dropna() if column in history else pd.Series(dtype=float)
        if logged.empty:
            raise KeyError(f"{path}: column {column!r} has no logged value")
        finals.append(float(logged.iloc[-1]))
    return float(np.mean(finals)), rows


@formula("stage_cost")
def stage_cost(sources, stage: str, statistic: str) -> tuple[float, int]:
    """What one stage of the run cost, from the Snakemake benchmark TSVs of its jobs (caibase.cost.stage_costs):
    jobs, wall_min and cpu_min (summed over jobs: job time, not elapsed time) or max_rss_mb (the largest resident
    memory of one job); stage `total`: over every stage's files."""
    _stamp(sources)  # a missing file is a missing record
    if stage != TOTAL and {benchmark_stage(path) for path in sources} != {stage}:
        raise ValueError(f"stage_cost: sources of stage {stage!r} include other stages: {list(sources)}")
    row = stage_costs(list(sources)).set_index("stage").loc[TOTAL]
    return float(row[statistic]), len(sources)


def compute(entry: dict) -> tuple[float, int]:
    """Recompute one published entry from its sources with its named formula."""
    if entry["formula"] not in FORMULAS:
        raise KeyError(f"{entry['key']}: unknown formula {entry['formula']!r} (known: {sorted(FORMULAS)})")
    return FORMULAS[entry["formula"]](entry["sources"], **entry["args"])


def clear_cache() -> None:
    for cached in (_read_jsonl, _summary_of, _sweep_summary_of, _paired_of):
        cached.cache_clear()


# ---------------------------------------------------------------------------------------------------------------
# Names and display

_DIGITS = "Zero One Two Three Four Five Six Seven Eight Nine".split()


def macro_name(key: str) -> str:
    """A LaTeX macro name (letters only) for a key: 'summary/dpo_aif/asr_jailbreak/ci95_low' ->
    'SummaryDpoAifAsrJailbreakCiNineFiveLow'."""
    words = []
    for part in "".join(c if c.isalnum() else " " for c in key).split():
        for chunk in _split_digits(part):
            words.append(_DIGITS[int(chunk)] if chunk.isdigit() else chunk[:1].upper() + chunk[1:])
    return "".join(words)


def _split_digits(part: str) -> list[str]:
    chunks, current = [], ""
    for char in part:
        if char.isdigit():
            if current:
                chunks.append(current)
            chunks.append(char)
            current = ""
        else:
            current += char
    return chunks + [current] if current else chunks


def display(value: float, statistic: str, decimals: int = 2) -> str:
    """How a number is printed in the paper: p-values to 3 decimals, counts as integers, megabytes to whole MB, the
    rest to `decimals` (2; a metric may ask for more: caibase.metrics.Metric.decimals)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if statistic in ("n", "n_records", "jobs"):
        return str(int(value))
    if statistic.endswith("_mb"):
        return f"{value:.0f}"
    if statistic == "valid":
        return "valid" if value else "invalid"
    if statistic.startswith("p_"):
        return f"{value:.3f}"
    return f"{value:.{decimals}f}"


def decimals_of(args: dict) -> int:
    """The decimals a published entry is printed with: its metric's (caibase.metrics.Metric.decimals), else 2."""
    metric = METRIC_BY_NAME.get(args.get("metric"))
    return metric.decimals if metric else 2


def statistic_of(args: dict) -> str:
    """What a published number is, which display() prints it by: its formula's statistic, or for a training-log
    number (formula history_final) its column."""
    return args.get("statistic", args.get("column"))


def entry(key: str, formula_name: str, args: dict, sources: list[str]) -> dict:
    """Compute a published entry from its sources."""
    value, n_records = FORMULAS[formula_name](sources, **args)
    statistic = statistic_of(args)
    return {"key": key, "value": value, "display": display(value, statistic, decimals_of(args)),
            "macro": macro_name(key), "formula": formula_name, "args": args, "sources": [str(s) for s in sources],
            "n_records": n_records}


# ---------------------------------------------------------------------------------------------------------------
# Verify


def verify(published: dict, root: str | os.PathLike = ".", tolerance: float | None = None) -> list[dict]:
    """Recompute every published number from its raw records; one result per number with status PASS or FAIL (a
    different value, a different record count, a display string that does not match, or a missing source)."""
    # never the file's own `tolerance` field: it only documents the check, and the file is what is being checked
    tolerance = ABS_TOLERANCE if tolerance is None else tolerance
    clear_cache()
    results = []
    old = Path.cwd()
    os.chdir(root)
    try:
        for item in published["numbers"]:
            result = {"key": item["key"], "published": item["value"], "recomputed": None, "status": "FAIL"}
            try:
                value, n_records = compute(item)
            except (MissingRecordError, KeyError, ValueError) as err:
                result["reason"] = str(err)
                results.append(result)
                continue
            result["recomputed"] = value
            statistic = statistic_of(item["args"])
            same = (math.isnan(value) and math.isnan(item["value"])) or abs(value - item["value"]) <= tolerance
            if not same:
                result["reason"] = f"differs by {value - item['value']:+.3g} (tolerance {tolerance:g})"
            elif n_records != item["n_records"]:
                result["reason"] = f"read {n_records} records, published from {item['n_records']}"
            elif display(item["value"], statistic, decimals_of(item["args"])) != item["display"]:
                result["reason"] = f"display {item['display']!r} is not the value {item['value']!r}"
            else:
                result["status"] = "PASS"
            results.append(result)
    finally:
        os.chdir(old)
    return results


def format_results(results: list[dict]) -> str:
    lines = []
    for r in results:
        recomputed = "missing" if r["recomputed"] is None else f"{r['recomputed']:.6g}"
        line = f"{r['status']}  {r['key']}  published={r['published']:.6g}  recomputed={recomputed}"
        lines.append(line + (f"  ({r['reason']})" if r.get("reason") else ""))
    failed = sum(r["status"] != "PASS" for r in results)
    lines.append(f"{len(results) - failed} PASS, {failed} FAIL of {len(results)} published numbers")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Build

SUMMARY_STATISTICS = ("mean", "ci95_low", "ci95_high")
PAIRED_STATISTICS = ("difference", "ci95_low", "ci95_high", "p_permutation")
FEEDBACK_STATISTICS = ("accuracy", "accuracy_ci95_low", "accuracy_ci95_high", "position_consistency",
                       "expected_calibration_error", "n")
HISTORY_COLUMNS = ("loss", "rewards/accuracies", "rewards/margins", "eval_loss")
JUDGE_STATISTICS = ("n", "agreement", "agreement_ci95_low", "agreement_ci95_high", "false_positive_rate",
                    "false_negative_rate", "cohen_kappa")
# Aggregate tables store 4 decimals; a published number further than this from its table cell is an error.
TABLE_TOLERANCE = 5.1e-5


def _check_against_table(item: dict, table_value: float, table: str) -> None:
    both_nan = math.isnan(item["value"]) and math.isnan(table_value)
    if not both_nan and abs(item["value"] - table_value) > TABLE_TOLERANCE:
        raise ValueError(f"{item['key']}: recomputed {item['value']!r} from raw records but {table} says "
                         f"{table_value!r}; the aggregate and the formula disagree")


def _from_table(key: str, formula_name: str, args: dict, sources: list[str], table_value: float,
                table: str) -> dict:
    item = entry(key, formula_name, args, sources)
    _check_against_table(item, table_value, table)
    return item


def build_numbers(summary: pd.DataFrame, paired: pd.DataFrame | None, judged: dict[str, list[str]],
                  feedback: dict[str, str], histories: dict[str, list[str]], n_boot: int,
                  judge_gates: dict | None = None) -> list[dict]:
    """Every number of the condition, paired, feedback and DPO tables as a published entry, computed from raw
    records and checked against the aggregate tables it is printed from. `judged` maps condition -> judged.jsonl
    per seed; `feedback` dataset -> per-item jsonl; `histories` DPO pairs kind -> history.csv per seed;
    `judge_gates` the judge gate recomputed from its records (judge_gate_numbers), whose marks the summary's `valid`
    column must carry. A cell no formula recomputes is an error, not a footnote."""
    numbers = []
    if "valid" in summary and judge_gates is not None:
        for row in summary.itertuples(index=False):
            expected, _ = metric_validity(row.metric, judge_gates)
            if not expected and str(row.valid).lower() == "true":
                raise ValueError(f"summary_by_condition.csv marks {row.condition}/{row.metric} valid, but the judge "
                                 "gate recomputed from its records says its judge failed; the aggregate and the "
                                 "formula disagree")
    for row in summary.itertuples(index=False):
        for statistic in SUMMARY_STATISTICS:
            args = {"condition": row.condition, "metric": row.metric, "statistic": statistic, "n_boot": n_boot}
            numbers.append(_from_table(summary_key(row.condition, row.metric, statistic), "condition_summary", args,
                                       judged[row.condition], float(getattr(row, statistic)),
                                       "summary_by_condition.csv"))
    for row in ([] if paired is None else paired.itertuples(index=False)):
        for statistic in PAIRED_STATISTICS:
            args = {"treatment": row.treatment, "control": row.control, "metric": row.metric,
                    "statistic": statistic, "n_boot": n_boot}
            numbers.append(_from_table(paired_key(row.treatment, row.control, row.metric, statistic),
                                       "paired_difference", args, judged[row.treatment] + judged[row.control],
                                       float(getattr(row, statistic)), "paired_differences.csv"))
    for dataset, path in feedback.items():
        for statistic in FEEDBACK_STATISTICS:
            numbers.append(entry(feedback_key(dataset, statistic), "feedback_validation",
                                 {"statistic": statistic}, [path]))
    if feedback and any(map(gated, summary.condition)):  # the gate of the AI-feedback condition
        item = entry(feedback_gate_key(AIF_CONDITION), "feedback_gate",
                     {"statistic": "valid", "sets": list(feedback), "chance": CHANCE}, list(feedback.values()))
        if "valid" in summary:  # the aggregate marked the condition's rows from the validation summary
            judged_valid = summary.metric.map(lambda m: metric_validity(m, judge_gates)[0])  # judge gate apart
            marked = summary[summary.condition.map(gated) & judged_valid]["valid"].astype(str).str.lower() == "true"
            if marked.any() != bool(item["value"]) or marked.all() != bool(item["value"]):
                raise ValueError(f"{item['key']}: the gate recomputed from the validation records says "
                                 f"{item['display']}, but summary_by_condition.csv marks {AIF_CONDITION} "
                                 f"{'valid' if marked.all() else 'invalid'}; the aggregate and the formula disagree")
        numbers.append(item)
    for pairs, paths in histories.items():
        for column in HISTORY_COLUMNS:
            if all(column in pd.read_csv(path, nrows=0).columns for path in paths):
                numbers.append(entry(dpo_key(pairs, column), "history_final", {"column": column}, paths))
    return numbers


def data_scale_numbers(per_seed: pd.DataFrame, summary: pd.DataFrame, judged_path: Callable[[int, str], str],
                       eval_sets: list[str], n_boot: int) -> list[dict]:
    """The data-scale summary's mean and CI per (pairs, point, metric), recomputed from the judged records of the
    point's policy on each seed (`per_seed` names them; `judged_path(seed, policy)` is the file) and checked
    against data_scale_summary.csv."""
    numbers = []
    for row in summary.itertuples(index=False):
        point = per_seed[(per_seed.pairs == row.pairs) & (per_seed.point == row.point)]
        sources = sorted({judged_path(int(s), p) for s, p in zip(point["seed"], point["policy"])})
        for statistic in SUMMARY_STATISTICS:
            args = {"point": row.point, "metric": row.metric, "statistic": statistic, "eval_sets": list(eval_sets),
                    "n_boot": n_boot}
            numbers.append(_from_table(scale_key(row.pairs, row.point, row.metric, statistic),
                                       "sweep_point_summary", args, sources, float(getattr(row, statistic)),
                                       "data_scale_summary.csv"))
    return numbers


def judge_agreement_numbers(table: pd.DataFrame, records: str) -> list[dict]:
    """Each judge's agreement with human labels per dataset, recomputed from the per-item validation records and
    checked against judge_agreement.csv."""
    numbers = []
    for row in table.itertuples(index=False):
        statistics = JUDGE_STATISTICS + (("pairwise_agreement",) if not pd.isna(row.pairwise_agreement) else ())
        for statistic in statistics:
            args = {"judge": row.judge, "dataset": row.dataset, "statistic": statistic}
            numbers.append(_from_table(judges_key(row.judge, row.dataset, statistic), "judge_agreement", args,
                                       [records], float(getattr(row, statistic)), "judge_agreement.csv"))
    return numbers


def judge_gate_numbers(gate: dict, sources: dict[str, str]) -> tuple[list[dict], dict]:
    """The judge gate (judges/gate.json of rule validate_judges) as published entries, recomputed from the per-item
    records (`sources`: task -> records file: judge-validation records for refusal, score-canary records for the
    score tasks) and checked against gate.json; returns the entries and the recomputed gates (task -> TaskGate)."""
    numbers, gates = [], {}
    for task, recorded in gate["gates"].items():
        args = {"task": task, "judge": recorded["judge"], "sets": list(recorded["sets"])}
        item = entry(judge_gate_key(task), "judge_gate", {**args, "statistic": "valid"}, [sources[task]])
        if bool(item["value"]) != recorded["valid"]:
            raise ValueError(f"{item['key']}: the judge gate recomputed from {sources[task]} says {item['display']}, "
                             f"but judges/gate.json says {'valid' if recorded['valid'] else 'invalid'}")
        for name, result in recorded["sets"].items():
            for statistic in SET_STATISTICS:
                numbers.append(_from_table(judge_gate_key(task, name, statistic), "judge_gate",
                                           {**args, "statistic": statistic, "reference_set": name}, [sources[task]],
                                           float(result[statistic]), "judges/gate.json"))
        numbers.append(item)
    records = {path: list(_jsonl(path)) for path in set(sources.values())}
    for task, recorded in gate["gates"].items():
        refusal = task == REFUSAL_TASK
        rows = records[sources[task]]
        gates[task] = gates_from_records(rows if refusal else [], [] if refusal else rows,
                                         {task: recorded["judge"]}, list(recorded["sets"]) if refusal else [])[task]
    return numbers, gates


def cost_numbers(benchmarks: list[str]) -> list[dict]:
    """Each stage's cost and the run's total (caibase.cost) as published entries, from the benchmark TSVs of the
    jobs the published numbers depend on (one file per job)."""
    by_stage: dict[str, list[str]] = {}
    for path in sorted(benchmarks):
        by_stage.setdefault(benchmark_stage(path), []).append(path)
    groups = {**dict(sorted(by_stage.items())), TOTAL: sorted(benchmarks)} if benchmarks else {}
    return [entry(cost_key(stage, statistic), "stage_cost", {"stage": stage, "statistic": statistic}, paths)
            for stage, paths in groups.items() for statistic in COST_STATISTICS]


def formula_docs() -> dict[str, str]:
    return {name: " ".join((fn.__doc__ or "").split()) for name, fn in sorted(FORMULAS.items())}
