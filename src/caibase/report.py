"""What the write-up shows, read from the published numbers: metric labels and the order of conditions, the metrics
the paper shows, the gates that set conditions and metrics apart, and the rows of the data-scale and judge-agreement
tables. The write-up's generated parts are rendered from them by caibase.macros (a LaTeX macro file: every number as
a macro, plus the run's stamps), caibase.tables (tables as CSV and LaTeX booktabs) and caibase.figures (figures as
PDF and PNG). Data-driven: every condition, metric and prompt set in the aggregate tables is rendered; optional
inputs (data-scale sweep, judge agreement) are rendered when present.

    snakemake --cores 1 results/embedded-cpu/paper/main.pdf
"""

from __future__ import annotations

import pandas as pd

from caibase.feedback_gate import AIF_CONDITION, Gate, feedback_gate, gated
from caibase.judge_gate import SET_STATISTICS, TaskGate, invalid_metrics, task_gate
from caibase.metrics import METRICS
from caibase.vocabulary import (
    PAIRED,
    POLICIES,
    SCALE,
    SUMMARY,
    feedback_gate_key,
    feedback_key,
    judge_gate_key,
    judges_key,
    parse_key,
    scale_key,
)

METRIC_LABELS = {
    "asr_jailbreak": "ASR, held-out jailbreaks",
    "asr_direct": "ASR, direct harmful",
    "over_refusal": "over-refusal, benign",
    "asr_jailbreak_at_k": "ASR@k, held-out jailbreaks",
    "asr_direct_at_k": "ASR@k, direct harmful",
    "over_refusal_benign": "over-refusal, clearly benign",
    "over_refusal_borderline": "over-refusal, borderline",
    "helpfulness": "helpfulness (1-5)",
    "helpful_response_tokens": "response tokens, helpful set",
    "reference_loglik": "reference log-lik. (per token; LLM-written refs)",
    "style_adherence": "style adherence (1-5)",
}


CONDITION_ORDER = list(POLICIES)


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def published_keys(numbers: dict, kind: str) -> list:
    """The keys of one kind (caibase.vocabulary: SUMMARY, PAIRED, ...) of the published numbers, taken apart."""
    return [key for key in map(parse_key, numbers) if key.kind == kind]


def ordered_conditions(conditions) -> list[str]:
    conditions = list(dict.fromkeys(conditions))
    return sorted(conditions, key=lambda c: (CONDITION_ORDER.index(c) if c in CONDITION_ORDER else 99, c))


def published_gate(numbers: dict) -> Gate | None:
    """The feedback-model gate of the published numbers (caibase.feedback_gate): its per-set accuracies and
    intervals are the published `feedback/<set>/...` numbers, its validity `gate/dpo_aif/valid`; None when the run
    has no AI-feedback condition or no feedback-model validation."""
    item = numbers.get(feedback_gate_key(AIF_CONDITION))
    if item is None:
        return None
    sets = {name: {"n": numbers[feedback_key(name, "n")]["value"],
                   "accuracy": numbers[feedback_key(name, "accuracy")]["value"],
                   "accuracy_ci95_wilson": [numbers[feedback_key(name, f"accuracy_ci95_{end}")]["value"]
                                            for end in ("low", "high")]} for name in item["args"]["sets"]}
    gate = feedback_gate(sets, item["args"]["chance"])
    if gate.valid != bool(item["value"]):
        raise ValueError(f"{item['key']} is {item['display']}, but its published validation numbers say otherwise")
    return gate


def invalid_conditions(numbers: dict) -> set[str]:
    """Conditions and policies of the published numbers that the feedback-model gate marks invalid."""
    gate = published_gate(numbers)
    if gate is None or gate.valid:
        return set()
    keys = published_keys(numbers, SUMMARY) + published_keys(numbers, PAIRED)
    return {condition for key in keys for condition in key.conditions if gated(condition)}


def published_judge_gates(numbers: dict) -> dict[str, TaskGate] | None:
    """The judge gate of the published numbers (caibase.judge_gate), task -> TaskGate: each set's n, rate, interval
    and baseline are the published `gate/judge/<task>/<set>/...` numbers, its validity `gate/judge/<task>/valid`;
    None when the run published no judge gate."""
    gates = {}
    for item in numbers.values():
        if item["formula"] == "judge_gate" and item["args"]["statistic"] == "valid":
            task, args = item["args"]["task"], item["args"]
            sets = {}
            for name in args["sets"]:
                result = {s: numbers[judge_gate_key(task, name, s)]["value"] for s in SET_STATISTICS}
                result["n"] = int(result["n"])
                sets[name] = {**result, "passed": result["ci95_low"] > result["baseline"]}
            gates[task] = task_gate(task, args["judge"], sets)
            if gates[task].valid != bool(item["value"]):
                raise ValueError(f"{item['key']} is {item['display']}, but its published set numbers say otherwise")
    return gates or None


def invalid_judged_metrics(numbers: dict) -> set[str]:
    """Metrics of the published numbers whose judge failed the judge gate."""
    metrics = {key.metric for kind in (SUMMARY, PAIRED, SCALE) for key in published_keys(numbers, kind)}
    return invalid_metrics(metrics, published_judge_gates(numbers))


def shown_metrics(metrics: set[str], samples_per_prompt: int) -> list[str]:
    """The metrics the paper shows, in METRICS order: @k rates only when k > 1 samples were drawn (with one sample
    they equal the per-attempt rates; metrics.json and published.json keep both)."""
    return [m.name for m in METRICS if m.name in metrics and (samples_per_prompt > 1 or m.per_prompt != "max")]


def data_scale_points(summary: pd.DataFrame, numbers: dict, metrics: list[str]) -> pd.DataFrame:
    """One row per (pairs, point, metric) of the sweep, for the `metrics` shown: its size in pairs (from the sweep's
    summary table) and the published mean and CI; `key` is the published key prefix."""
    rows = []
    for row in summary[summary.metric.isin(metrics)].itertuples(index=False):
        key = scale_key(row.pairs, row.point, row.metric)
        n_pairs = row.n_pairs_min if row.n_pairs_min == row.n_pairs_max else f"{row.n_pairs_min}-{row.n_pairs_max}"
        rows.append({"pairs": row.pairs, "point": row.point, "n_pairs": n_pairs, "n_pairs_max": row.n_pairs_max,
                     "set": row.set, "metric": row.metric, "key": key,
                     **{s: numbers[scale_key(row.pairs, row.point, row.metric, s)]["value"]
                        for s in ("mean", "ci95_low", "ci95_high")}})
    return pd.DataFrame(rows)


def judge_agreement_rows(numbers: dict) -> pd.DataFrame:
    """The published judge-agreement numbers, one row per (judge, dataset) (judge names may hold '/': the entries'
    formula arguments say which judge and dataset a number is of, not its key)."""
    rows: dict[tuple, dict] = {}
    for item in numbers.values():
        if item["formula"] == "judge_agreement":
            judge, dataset = item["args"]["judge"], item["args"]["dataset"]
            row = rows.setdefault((judge, dataset), {"judge": judge, "dataset": dataset,
                                                     "key": judges_key(judge, dataset)})
            row[item["args"]["statistic"]] = item["value"]
    return pd.DataFrame(list(rows.values()))
