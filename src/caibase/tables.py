"""The write-up's tables from the published numbers, each as CSV (full precision) and a LaTeX booktabs tabular
(display strings, escaped; the conditions and metrics the gates mark invalid set apart).

    snakemake --cores 1 results/embedded-cpu/paper/generated/tables
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from caibase.artifacts import atomic_path
from caibase.cost import STATISTICS as COST_STATISTICS
from caibase.feedback_gate import AIF_CONDITION
from caibase.judge_gate import SET_STATISTICS
from caibase.macros import latex_escape
from caibase.metrics import METRIC_BY_NAME, is_rate
from caibase.report import (
    data_scale_points,
    invalid_conditions,
    invalid_judged_metrics,
    judge_agreement_rows,
    metric_label,
    ordered_conditions,
    published_judge_gates,
    published_keys,
    shown_metrics,
)
from caibase.vocabulary import (
    AI_FEEDBACK,
    COST,
    DPO_HISTORY,
    FEEDBACK,
    PAIRED,
    SFT,
    SUMMARY,
    cost_key,
    dpo_key,
    feedback_key,
    judge_gate_key,
    paired_key,
    summary_key,
)


def set_apart(cell: str) -> str:
    """A table cell of an invalid condition: grey, with a dagger the caption explains."""
    return rf"\textcolor{{gray}}{{{cell}}}$^\dagger$"


def _cell(numbers: dict, key: str) -> str:
    return numbers[key]["display"] if key in numbers else "n/a"


def _interval(numbers: dict, prefix: str, centre: str, low: str, high: str) -> str:
    keys = [f"{prefix}/{centre}", f"{prefix}/{low}", f"{prefix}/{high}"]
    if not all(k in numbers for k in keys):
        return "n/a"
    return f"{numbers[keys[0]]['display']} [{numbers[keys[1]]['display']}, {numbers[keys[2]]['display']}]"


def _write_table(frame: pd.DataFrame, out_dir: Path, name: str, latex: pd.DataFrame, column_format: str) -> None:
    """CSV (full precision) and a booktabs LaTeX tabular (display strings, escaped) of one table."""
    with atomic_path(out_dir / f"{name}.csv") as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    latex = latex.rename(columns=latex_escape)
    body = latex.style.hide(axis="index").to_latex(hrules=True, column_format=column_format)
    with atomic_path(out_dir / f"{name}.tex") as tmp:
        tmp.write_text(body, encoding="utf-8")


def write_tables(published: dict, out_dir: Path, data_scale: pd.DataFrame | None) -> list[str]:
    """Safety and quality results by condition, paired differences, feedback validation, DPO final state, judge
    agreement, the judge gate, the cost per stage, and the data-scale sweep when the run has one (`data_scale`: its
    summary table, for the design)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    numbers = {item["key"]: item for item in published["numbers"]}
    written = []
    invalid = invalid_conditions(numbers)  # set apart (grey, dagger) in every table, `valid` false in the CSVs
    unjudged = invalid_judged_metrics(numbers)  # metrics whose judge failed the judge gate, set apart likewise

    def shown(cell: str, *conditions: str, metric: str | None = None) -> str:
        return set_apart(cell) if invalid.intersection(conditions) or metric in unjudged else cell

    summary_keys = published_keys(numbers, SUMMARY)
    conditions = ordered_conditions(key.condition for key in summary_keys)
    metrics = shown_metrics({key.metric for key in summary_keys}, published["meta"]["samples_per_prompt"])
    for name, group in (("safety_results", [m for m in metrics if is_rate(m)]),
                        ("quality_results", [m for m in metrics if not is_rate(m)])):
        if not group:
            continue
        long = pd.DataFrame([{"condition": c, "metric": m, **{s: numbers[summary_key(c, m, s)]["value"]
                                                                for s in ("mean", "ci95_low", "ci95_high")},
                              "valid": c not in invalid and m not in unjudged}
                             for c in conditions for m in group if summary_key(c, m, "mean") in numbers])
        wide = pd.DataFrame([{"condition": latex_escape(c),
                              **{metric_label(m): shown(_interval(numbers, summary_key(c, m), "mean", "ci95_low",
                                                                  "ci95_high"), c, metric=m) for m in group}}
                             for c in conditions])
        _write_table(long, out_dir, name, wide, "l" + "c" * len(group))
        written.append(name)

    paired_keys = sorted({(key.treatment, key.control, key.metric) for key in published_keys(numbers, PAIRED)
                          if key.metric in metrics},
                         key=lambda k: (k[2], k[0], k[1]))  # by metric, then treatment and control
    if paired_keys:
        rows, latex = [], []
        for treatment, control, metric in paired_keys:
            prefix = paired_key(treatment, control, metric)
            rows.append({"metric": metric, "treatment": treatment, "control": control,
                         **{s: numbers[paired_key(treatment, control, metric, s)]["value"]
                            for s in ("difference", "ci95_low", "ci95_high", "p_permutation")},
                         "valid": not invalid.intersection((treatment, control)) and metric not in unjudged})
            latex.append({"metric": latex_escape(metric_label(metric)),
                          "comparison": latex_escape(f"{treatment} - {control}"),
                          "difference [CI]": shown(_interval(numbers, prefix, "difference", "ci95_low", "ci95_high"),
                                                   treatment, control, metric=metric),
                          "p (sign flip)": shown(_cell(numbers, f"{prefix}/p_permutation"), treatment, control,
                                                 metric=metric)})
        _write_table(pd.DataFrame(rows), out_dir, "paired_differences", pd.DataFrame(latex), "llcc")
        written.append("paired_differences")

    datasets = sorted({key.dataset for key in published_keys(numbers, FEEDBACK)})
    if datasets:
        rows = [{"dataset": d, **{s: numbers[feedback_key(d, s)]["value"] for s in (
            "n", "accuracy", "accuracy_ci95_low", "accuracy_ci95_high", "position_consistency",
            "expected_calibration_error")}} for d in datasets]
        latex = [{"dataset": latex_escape(d), "n": _cell(numbers, feedback_key(d, "n")),
                  "accuracy [Wilson CI]": _interval(numbers, feedback_key(d), "accuracy", "accuracy_ci95_low",
                                                    "accuracy_ci95_high"),
                  "position consistency": _cell(numbers, feedback_key(d, "position_consistency")),
                  "ECE": _cell(numbers, feedback_key(d, "expected_calibration_error"))} for d in datasets]
        _write_table(pd.DataFrame(rows), out_dir, "feedback_validation", pd.DataFrame(latex), "lcccc")
        written.append("feedback_validation")

    dpo = sorted({key.pairs for key in published_keys(numbers, DPO_HISTORY)})
    if dpo:
        columns = sorted({key.column for key in published_keys(numbers, DPO_HISTORY)})
        rows = [{"pairs": p, **{c: numbers.get(dpo_key(p, c), {}).get("value") for c in columns}} for p in dpo]
        latex = [{"pairs": latex_escape(p), **{c: _cell(numbers, dpo_key(p, c)) for c in columns}}
                 for p in dpo]
        _write_table(pd.DataFrame(rows), out_dir, "dpo_final", pd.DataFrame(latex), "l" + "c" * len(columns))
        written.append("dpo_final")

    if data_scale is not None:
        points = data_scale_points(data_scale, numbers, metrics)
        # the points trained on AI-feedback pairs (all but its SFT point) share the AI-feedback condition's gate
        points = points.assign(valid=[not (AIF_CONDITION in invalid and pairs == AI_FEEDBACK and point != SFT)
                                      and metric not in unjudged
                                      for pairs, point, metric in zip(points.pairs, points.point, points.metric)])
        latex = points.assign(cell=[cell if valid else set_apart(cell) for cell, valid in zip(
            [_interval(numbers, key, "mean", "ci95_low", "ci95_high") for key in points.key], points.valid)])
        latex = latex.pivot(index=["pairs", "n_pairs_max", "point", "n_pairs"], columns="metric",
                            values="cell").reset_index()  # rows by pairs, then size
        latex = latex[["pairs", "point", "n_pairs", *dict.fromkeys(points.metric)]]
        latex.columns = [metric_label(c) if c in METRIC_BY_NAME else c.replace("_", " ") for c in latex.columns]
        latex[["pairs", "point"]] = latex[["pairs", "point"]].map(latex_escape)
        _write_table(points.drop(columns="key"), out_dir, "data_scale", latex, "llr" + "c" * (latex.shape[1] - 3))
        written.append("data_scale")

    agreement = judge_agreement_rows(numbers)
    if not agreement.empty:
        def rate(key: str) -> str:
            return _cell(numbers, key).replace("n/a", "--")

        latex = pd.DataFrame([{
            "judge": latex_escape(row.judge), "labels": latex_escape(row.dataset), "n": rate(f"{row.key}/n"),
            "agreement [Wilson CI]": _interval(numbers, row.key, "agreement", "agreement_ci95_low",
                                               "agreement_ci95_high").replace("n/a", "--"),
            "FPR": rate(f"{row.key}/false_positive_rate"), "FNR": rate(f"{row.key}/false_negative_rate"),
            "kappa": rate(f"{row.key}/cohen_kappa"), "pairwise": rate(f"{row.key}/pairwise_agreement"),
        } for row in agreement.itertuples()])
        _write_table(agreement.drop(columns="key"), out_dir, "judge_agreement", latex, "llrccccc")
        written.append("judge_agreement")

    judge_gates = published_judge_gates(numbers)
    if judge_gates:
        rows = [{"task": task, "judge": gate.judge, "set": name, **{k: result[k] for k in SET_STATISTICS},
                 "passed": result["passed"], "task_valid": gate.valid}
                for task, gate in judge_gates.items() for name, result in gate.sets.items()]
        latex = pd.DataFrame([{
            "task": latex_escape(row["task"]), "reference set": latex_escape(row["set"]), "n": str(row["n"]),
            "rate [Wilson CI]": _interval(numbers, judge_gate_key(row["task"], row["set"], None), "rate", "ci95_low",
                                          "ci95_high"),
            "must exceed": _cell(numbers, judge_gate_key(row["task"], row["set"], "baseline")),
            "gate": "passed" if row["passed"] else "failed"} for row in rows])
        _write_table(pd.DataFrame(rows), out_dir, "judge_gate", latex, "llrccl")
        written.append("judge_gate")

    stages = list(dict.fromkeys(key.stage for key in published_keys(numbers, COST)))  # the total row last
    if stages:
        rows = [{"stage": stage, **{s: numbers[cost_key(stage, s)]["value"] for s in COST_STATISTICS}}
                for stage in stages]
        headers = {"jobs": "jobs", "wall_min": "job time (min)", "cpu_min": "CPU time (min)",
                   "max_rss_mb": "peak memory (MB)"}
        latex = pd.DataFrame([{"stage": latex_escape(stage), **{headers[s]: _cell(numbers, cost_key(stage, s))
                                                                for s in COST_STATISTICS}} for stage in stages])
        _write_table(pd.DataFrame(rows), out_dir, "cost", latex, "lrrrr")
        written.append("cost")
    return written
