"""The write-up's generated parts: a LaTeX macro file (every number as a macro, plus the run's stamps), tables as CSV
and LaTeX booktabs, figures as PDF and PNG. Data-driven: every condition, metric and prompt set in the aggregate
tables is rendered; optional inputs (data-scale sweep, judge agreement) are rendered when present.

    snakemake --cores 1 results/embedded-cpu/paper/main.pdf
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from caibase.artifacts import atomic_path, read_jsonl  # noqa: E402
from caibase.cost import STATISTICS as COST_STATISTICS  # noqa: E402
from caibase.feedback_gate import AIF_CONDITION, Gate, feedback_gate, gated  # noqa: E402
from caibase.judge_gate import (  # noqa: E402
    REFUSAL_TASK,
    SCORE_TASKS,
    SET_STATISTICS,
    TaskGate,
    invalid_metrics,
    task_gate,  # noqa: E402
)
from caibase.metrics import METRIC_BY_NAME, METRICS, is_rate  # noqa: E402
from caibase.vocabulary import (  # noqa: E402
    AI_FEEDBACK,
    COST,
    DPO_HISTORY,
    FEEDBACK,
    PAIRED,
    POLICIES,
    SCALE,
    SFT,
    SUMMARY,
    cost_key,
    dpo_key,
    feedback_gate_key,
    feedback_key,
    judge_gate_key,
    judges_key,
    paired_key,
    parse_key,
    scale_key,
    summary_key,
)

plt.rcParams.update({"svg.hashsalt": "caibase", "font.size": 8, "figure.dpi": 100})
PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}
PNG_METADATA = {"Software": None}

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


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text) -> str:
    return re.sub(r"[\\&%$#_{}~^]", lambda match: _LATEX_SPECIAL[match.group()], str(text))


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


def set_apart(cell: str) -> str:
    """A table cell of an invalid condition: grey, with a dagger the caption explains."""
    return rf"\textcolor{{gray}}{{{cell}}}$^\dagger$"


# ---------------------------------------------------------------------------------------------------------------
# Macros


def macros_tex(published: dict) -> str:
    """`\\newcommand` per published number, the run's stamps, and \\if switches for optional parts."""
    meta = published["meta"]
    lines = ["% Generated by the caibase report rule; do not edit. Every number is in published.json."]
    for item in published["numbers"]:
        lines.append(rf"\newcommand{{\{item['macro']}}}{{{item['display']}}}")
    strings = {
        "RunName": meta["run_name"], "ModelId": meta["model"]["id"], "ModelKind": meta["model"]["kind"],
        "ModelSource": meta["model"]["source"], "ModelShaShort": meta["model"]["sha256"][:12],
        "ConfigShaShort": meta["config_sha256"][:12], "ReportCodeVersion": meta["code_version"],
        "ResultsCodeVersion": ", ".join(meta["results_code_versions"]), "JudgeName": meta["judge"],
        "ScoreJudgeName": meta["score_judge"],
        "Device": meta["device"], "SeedList": ", ".join(map(str, meta["seeds"])), "NumSeeds": len(meta["seeds"]),
        "PromptsPerSet": meta["prompts_per_set"], "BootstrapSamples": meta["bootstrap_samples"],
        "CiLevelPercent": round(100 * meta["ci_level"]), "ToleranceAbs": f"{published['tolerance']['abs']:g}",
        "NumPublished": len(published["numbers"]),
        "Conditions": ", ".join(meta["conditions"]), "DpoBeta": meta["dpo_beta"], "DpoSteps": meta["dpo_steps"],
        "CritiqueRounds": meta["critique_rounds"], "RedteamPrompts": meta["redteam_prompts"],
    }
    gate = published_gate({item["key"]: item for item in published["numbers"]})
    strings |= {"FeedbackGateReason": gate.reason if gate else "", "FeedbackGateChance": f"{gate.chance:g}" if gate
                else ""}
    judge_gates = published_judge_gates({item["key"]: item for item in published["numbers"]}) or {}
    strings |= {"RefusalJudgeGateReason": judge_gates[REFUSAL_TASK].reason if REFUSAL_TASK in judge_gates else "",
                "ScoreJudgeGateReason": "; ".join(judge_gates[t].reason for t in SCORE_TASKS if t in judge_gates
                                                  and not judge_gates[t].valid)}
    reference = meta.get("instruct_reference") or {}
    strings |= {"ReferenceModelId": reference.get("id", ""), "ReferenceModelKind": reference.get("kind", "")}
    for name, value in strings.items():
        lines.append(rf"\newcommand{{\{name}}}{{{latex_escape(value)}}}")
    switches = {"StandIn": meta["model"]["kind"] != "base" or meta["device"] == "cpu",
                "InstructModel": meta["model"]["kind"] != "base", "JudgeProxy": meta["judge_is_proxy"],
                "HasAifGate": gate is not None, "AifValid": gate is None or gate.valid,
                "HasJudgeGate": bool(judge_gates), "HasInstructReference": bool(reference),
                "RefusalJudgeValid": REFUSAL_TASK not in judge_gates or judge_gates[REFUSAL_TASK].valid,
                "ScoreJudgeValid": all(judge_gates[t].valid for t in SCORE_TASKS if t in judge_gates),
                **{f"Has{k}": v for k, v in sorted(meta["present"].items())}}
    for name, on in switches.items():
        lines.append(rf"\newif\if{name}\{name}{'true' if on else 'false'}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# Tables


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


def shown_metrics(metrics: set[str], samples_per_prompt: int) -> list[str]:
    """The metrics the paper shows, in METRICS order: @k rates only when k > 1 samples were drawn (with one sample
    they equal the per-attempt rates; metrics.json and published.json keep both)."""
    return [m.name for m in METRICS if m.name in metrics and (samples_per_prompt > 1 or m.per_prompt != "max")]


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


# ---------------------------------------------------------------------------------------------------------------
# Figures


def save_figure(fig, out_dir: Path, name: str) -> None:
    """PDF and PNG with no timestamps, so the same data gives the same bytes."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for suffix, metadata in ((".pdf", PDF_METADATA), (".png", PNG_METADATA)):
        with atomic_path(out_dir / f"{name}{suffix}") as tmp:
            fig.savefig(tmp, format=suffix[1:], metadata=metadata, bbox_inches="tight")
    plt.close(fig)


def _by_condition(summary: pd.DataFrame, metrics: list[str], ylabel: str, ylim=None, invalid=frozenset(),
                  unjudged=frozenset()):
    """One panel per metric, a point with its interval per condition; `invalid` conditions (the feedback-model
    gate) hollow and grey, labelled "(invalid)"; a panel of an `unjudged` metric (its judge failed the judge gate)
    all hollow and grey, titled "(invalid: judge)"."""
    conditions = ordered_conditions(summary["condition"])
    fig, axes = plt.subplots(1, len(metrics), figsize=(2.4 * len(metrics), 2.4), sharey=ylim is not None,
                             squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        rows = summary[summary.metric == metric].set_index("condition").reindex(conditions)
        x = np.arange(len(conditions))
        apart = np.array([c in invalid or metric in unjudged for c in conditions])
        for select, color, face in ((~apart, "tab:blue", "tab:blue"), (apart, "tab:gray", "white")):
            if select.any():
                part = rows[select]
                ax.errorbar(x[select], part["mean"], yerr=[part["mean"] - part["ci95_low"],
                                                           part["ci95_high"] - part["mean"]],
                            fmt="o", capsize=3, color=color, markerfacecolor=face)
        ax.set_xticks(x, [f"{c} (invalid)" if c in invalid else c for c in conditions], rotation=45, ha="right")
        ax.set_title(metric_label(metric) + ("\n(invalid: judge)" if metric in unjudged else ""))
        if ylim:
            ax.set_ylim(*ylim)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def dpo_dynamics_figure(histories: dict[str, dict[str, str]]):
    """Loss, reward margin and reward accuracy per step, one line per seed and a row per kind of pairs (`histories`:
    pairs -> {seed label: history.csv})."""
    columns = ["loss", "rewards/margins", "rewards/accuracies"]
    fig, axes = plt.subplots(len(histories), len(columns), figsize=(7, 2.0 * len(histories)), squeeze=False)
    for row, (pairs, paths) in enumerate(sorted(histories.items())):
        for col, column in enumerate(columns):
            ax = axes[row][col]
            for seed, path in paths.items():
                history = pd.read_csv(path)
                logged = history[history[column].notna()] if column in history else history.iloc[0:0]
                ax.plot(logged["step"], logged[column], lw=1, label=seed)
                eval_column = f"eval_{column}"
                if eval_column in history:
                    dev = history[history[eval_column].notna()]
                    ax.plot(dev["step"], dev[eval_column], "x", ms=4, color=ax.lines[-1].get_color())
            ax.set_title(f"{pairs}: {column}")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def write_figures(published: dict, summary: pd.DataFrame, histories: dict[str, dict[str, str]],
                  feedback: dict[str, str], out_dir: Path, data_scale: pd.DataFrame | None) -> list[str]:
    numbers = {item["key"]: item for item in published["numbers"]}
    written = []
    metrics = shown_metrics(set(summary["metric"]), published["meta"]["samples_per_prompt"])
    rates = [m for m in metrics if is_rate(m)]
    scores = [m for m in metrics if not is_rate(m)]
    invalid = invalid_conditions(numbers)
    unjudged = invalid_judged_metrics(numbers)
    save_figure(_by_condition(summary, rates, "rate (mean over seeds, 95% CI)", (-0.05, 1.05), invalid, unjudged),
                out_dir, "rates_by_condition")
    written.append("rates_by_condition")
    if scores:
        save_figure(_by_condition(summary, scores, "score (mean over seeds, 95% CI)", invalid=invalid,
                                  unjudged=unjudged), out_dir, "scores_by_condition")
        written.append("scores_by_condition")

    if histories:
        save_figure(dpo_dynamics_figure(histories), out_dir, "dpo_dynamics")
        written.append("dpo_dynamics")

    if feedback:
        from caibase.metrics import calibration_table

        fig, axes = plt.subplots(1, 2, figsize=(6, 2.6))
        for dataset, path in sorted(feedback.items()):
            records = read_jsonl(path)
            bins = [b for b in calibration_table(records) if b["n"]]
            axes[0].plot([b["mean_confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", label=dataset)
        axes[0].plot([0.5, 1], [0.5, 1], "--", color="grey", lw=0.8)
        axes[0].set(xlabel="confidence", ylabel="accuracy", title="calibration", xlim=(0.48, 1.02))
        axes[0].legend(fontsize=6)
        for dataset, path in sorted(feedback.items()):
            axes[1].hist([r["confidence"] for r in read_jsonl(path)], bins=np.linspace(0.5, 1, 11), alpha=0.5,
                         label=dataset)
        axes[1].set(xlabel="confidence", ylabel="items", title="confidence histogram")
        fig.tight_layout()
        save_figure(fig, out_dir, "feedback_calibration")
        written.append("feedback_calibration")

    if data_scale is not None:
        points = data_scale_points(data_scale, numbers, metrics)
        panels = list(dict.fromkeys(zip(points["set"], points["metric"])))
        fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.4), squeeze=False)
        for ax, (prompt_set, metric) in zip(axes[0], panels):
            for pairs, group in points[(points.set == prompt_set) & (points.metric == metric)].groupby("pairs"):
                group = group.sort_values("n_pairs_max")  # the full pool's x is its largest seed's pool
                label = f"{pairs} (invalid)" if pairs == AI_FEEDBACK and AIF_CONDITION in invalid else pairs
                ax.errorbar(group["n_pairs_max"], group["mean"], capsize=2, fmt="o-", label=label,
                            yerr=[group["mean"] - group["ci95_low"], group["ci95_high"] - group["mean"]])
            # symlog keeps the SFT point (0 pairs), which a log axis would drop silently
            ax.set(xscale="symlog", xlabel="preference pairs",
                   title=metric_label(metric) + ("\n(invalid: judge)" if metric in unjudged else ""))
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=6)
        fig.tight_layout()
        save_figure(fig, out_dir, "data_scale")
        written.append("data_scale")

    judge_agreement = judge_agreement_rows(numbers)
    if not judge_agreement.empty:
        numeric = ["agreement", "false_positive_rate", "false_negative_rate", "cohen_kappa"]
        labels = judge_agreement["judge"].str.cat(judge_agreement["dataset"], sep="\n")
        fig, ax = plt.subplots(figsize=(5, 2.6))
        width = 0.8 / len(numeric)
        for i, column in enumerate(numeric):
            ax.bar(np.arange(len(labels)) + i * width, judge_agreement[column].fillna(0), width, label=column)
        ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels, rotation=45, ha="right", fontsize=6)
        ax.legend(fontsize=6)
        fig.tight_layout()
        save_figure(fig, out_dir, "judge_agreement")
        written.append("judge_agreement")
    return written

