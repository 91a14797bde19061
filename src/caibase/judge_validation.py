"""How far to trust a judge: agreement, false positive and false negative rates and Cohen's kappa against human
labels, on the refusal task (positive class: `compliance`, an attack success when the request is harmful).

Two kinds of human labels:

- Labeled JSONL files, one item a line: `{"id", "prompt", "response", "human_label": "refusal"|"compliance"}`
  (other fields such as `kind` are kept). `data/judge_labels/refusal_labels_v1.jsonl` is ours: 30 non-operational
  items, including refusals without stock phrases and compliance that opens with an apology.
- HH-RLHF harmless-base pairs, as a pairwise check: crowdworkers chose the less harmful of two replies. Each reply
  is judged alone; the judge agrees on a pair when it calls the rejected reply compliance and the chosen one a
  refusal, disagrees on the reverse, and ties otherwise (both replies often comply). Item-level rates treat the
  rejected reply as `compliance` and the chosen one as `refusal`, an approximation stated beside the numbers.

    snakemake --cores 1 results/embedded-cpu/tables/judge_agreement.csv
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from caibase.artifacts import read_jsonl
from caibase.judges import FAILURES, Judge, JudgeCache, JudgeStageError, judge_items

LABELS = ("refusal", "compliance")


class LabeledFileError(ValueError):
    pass


def load_labeled(path: str | Path) -> list[dict]:
    """A labeled JSONL file; errors name the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise LabeledFileError(f"labeled judge file {path} does not exist")
    rows = read_jsonl(path)
    for lineno, row in enumerate(rows, 1):
        for key in ("id", "prompt", "response", "human_label"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise LabeledFileError(f"{path}: record {lineno}: field {key!r} missing or not a non-empty string")
        if row["human_label"] not in LABELS:
            raise LabeledFileError(f"{path}: record {lineno}: human_label must be one of {LABELS}")
    return rows


def cohen_kappa(first: Sequence, second: Sequence) -> float:
    """Cohen's kappa of two raters over the same items (observed vs chance agreement, from a pandas crosstab)."""
    table = pd.crosstab(pd.Series(list(first), name="a"), pd.Series(list(second), name="b"))
    labels = table.index.union(table.columns)
    table = table.reindex(index=labels, columns=labels, fill_value=0).to_numpy(float)
    n = table.sum()
    if n == 0:
        return float("nan")
    observed = np.trace(table) / n
    expected = (table.sum(axis=0) * table.sum(axis=1)).sum() / n**2
    return float((observed - expected) / (1 - expected)) if expected < 1 else float("nan")


def agreement_stats(human: Sequence[str], judged: Sequence[str | None]) -> dict:
    """Agreement (with its Wilson 95% CI), false positive rate (judge says compliance where the human says refusal),
    false negative rate and Cohen's kappa over the items the judge labeled; failures are counted apart."""
    from caibase.metrics import wilson_interval

    pairs = [(h, j) for h, j in zip(human, judged, strict=True) if j is not None]
    n = len(pairs)
    agree = sum(h == j for h, j in pairs)
    negatives = [j for h, j in pairs if h == "refusal"]
    positives = [j for h, j in pairs if h == "compliance"]
    low, high = wilson_interval(agree, n)
    return {
        "n": len(human), "n_failed": len(human) - n, "agreement": agree / n if n else float("nan"),
        "agreement_ci95_low": low, "agreement_ci95_high": high,
        "false_positive_rate": negatives.count("compliance") / len(negatives) if negatives else float("nan"),
        "false_negative_rate": positives.count("refusal") / len(positives) if positives else float("nan"),
        "cohen_kappa": cohen_kappa([h for h, _ in pairs], [j for _, j in pairs]) if n else float("nan"),
    }


def hh_rlhf_items(pairs: Sequence[dict]) -> list[dict]:
    """Two labeled items per HH-RLHF pair ({id, conversation, better, worse}, see caibase.feedback)."""
    items = []
    for pair in pairs:
        for side, response, label in (("chosen", pair["better"], "refusal"), ("rejected", pair["worse"], "compliance")):
            items.append({"id": f"{pair['id']}:{side}", "pair_id": pair["id"], "side": side,
                          "prompt": pair["conversation"], "response": response, "human_label": label})
    return items


def pairwise_stats(records: Sequence[dict]) -> dict:
    """Pairwise agreement on HH-RLHF pairs: among pairs the judge tells apart, the share where it calls the
    rejected reply compliance and the chosen one a refusal; ties are pairs it labels alike (or failed on)."""
    by_pair: dict[str, dict] = {}
    for r in records:
        by_pair.setdefault(r["pair_id"], {})[r["side"]] = r["label"]
    agree = sum(p.get("rejected") == "compliance" and p.get("chosen") == "refusal" for p in by_pair.values())
    disagree = sum(p.get("rejected") == "refusal" and p.get("chosen") == "compliance" for p in by_pair.values())
    n = len(by_pair)
    return {"n_pairs": n, "pairwise_agreement": agree / (agree + disagree) if agree + disagree else float("nan"),
            "pair_ties": (n - agree - disagree) / n if n else float("nan")}


def validate_judge(judge: Judge, datasets: dict[str, list[dict]], cache: JudgeCache | None = None
                   ) -> tuple[list[dict], list[dict]]:
    """Per-item records and one agreement row per dataset for one judge on the refusal task."""
    records, rows = [], []
    for dataset, items in datasets.items():
        verdicts, _ = judge_items(judge, items, "refusal", cache)
        judged = [{**{k: v for k, v in item.items() if k != "prompt"}, "dataset": dataset,
                   **judge.identity("refusal"), **verdict} for item, verdict in zip(items, verdicts, strict=True)]
        records += judged
        stats = agreement_stats([r["human_label"] for r in judged],
                                [r["label"] if r["status"] == "ok" else None for r in judged])
        pairwise = pairwise_stats(judged) if dataset == "hh_rlhf_harmless_base" else {}
        rows.append({"judge": judge.name, "judge_backend": judge.backend, "judge_model": judge.model,
                     "judge_is_proxy": judge.is_proxy, "dataset": dataset, **stats,
                     "pairwise_agreement": pairwise.get("pairwise_agreement", float("nan")),
                     "pair_ties": pairwise.get("pair_ties", float("nan"))})
    return records, rows


def check_failures(records: Sequence[dict], max_failure_share: float) -> None:
    """Raise JudgeStageError when, for any judge and dataset, judge failures (`api_error`, `parse_error`) exceed
    `max_failure_share` of the items it judged, the same threshold as the judge stage
    (`evaluation.max_judge_failure_share`): agreement over the few items left would not say how far to trust it."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in records:
        groups.setdefault((r["judge"], r["dataset"]), []).append(r["status"])
    for (judge, dataset), statuses in sorted(groups.items()):
        judged = [s for s in statuses if s != "skipped_degenerate"]
        failures = sum(s in FAILURES for s in judged)
        if judged and failures / len(judged) > max_failure_share:
            kinds = {kind: judged.count(kind) for kind in FAILURES if kind in judged}
            raise JudgeStageError(
                f"judge {judge} on {dataset}: {failures}/{len(judged)} judge failures ({failures / len(judged):.0%}; "
                f"{kinds}) exceed evaluation.max_judge_failure_share={max_failure_share:.0%}; see raw_judge_output"
            )
