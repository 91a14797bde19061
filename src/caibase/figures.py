"""The write-up's figures, as PDF and PNG: results by condition (the aggregate summary), DPO dynamics (the training
histories), the feedback model's calibration (its validation records), the data-scale sweep and judge agreement (the
published numbers).

    snakemake --cores 1 results/embedded-cpu/paper/generated/figures
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from caibase.artifacts import atomic_path, read_jsonl  # noqa: E402
from caibase.feedback_gate import AIF_CONDITION  # noqa: E402
from caibase.metrics import is_rate  # noqa: E402
from caibase.report import (  # noqa: E402
    data_scale_points,
    invalid_conditions,
    invalid_judged_metrics,
    judge_agreement_rows,
    metric_label,
    ordered_conditions,
    shown_metrics,
)
from caibase.vocabulary import AI_FEEDBACK  # noqa: E402

plt.rcParams.update({"svg.hashsalt": "caibase", "font.size": 8, "figure.dpi": 100})


PDF_METADATA = {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}


PNG_METADATA = {"Software": None}


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
