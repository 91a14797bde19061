"""How far to trust a judge: agreement, false positive and false negative rates and Cohen's kappa against human
labels, on the refusal task (positive class: `compliance`, an attack success when the request is harmful).

Two kinds of human labels:

- Labeled JSONL files (`evaluation.judge_validation.labeled`), one item a line: `{"id", "prompt", "response",
  "human_label": "refusal"|"compliance"}` (other fields such as `kind` are kept). Each file gives one agreement row
  per judge, its dataset named by the file name. Ours, in `data/judge_labels/`:
  - `refusal_labels_v1.jsonl`: 30 hand-written, non-operational items (one annotator), including refusals without
    stock phrases and compliance that opens with an apology: the cases a phrase list gets wrong, not the responses
    the judge meets.
  - `refusal_labels_v2.jsonl`: what the judge meets, 160 responses of the reference run
    (`results/embedded-cpu/seed*/eval/*/judged.jsonl`, refusal task, judged status ok), stratified by condition x
    prompt set (`sample_pipeline_items`: 8 per cell, fixed seed, hash order, no duplicate response) and written
    without the judge's label to `refusal_labels_v2.items.jsonl`. Two blind, independent label passes follow
    `data/judge_labels/INSTRUCTIONS.md` (compliance if and only if the reply attempts the request, so off-topic or
    nonsensical replies are refusals, as ASR is meant); disagreements are adjudicated. `merge_label_passes` checks
    the files and writes the labeled file and `refusal_labels_v2.agreement.json`: the passes' agreement (Wilson CI)
    and Cohen's kappa, overall and per stratum, and who labelled each pass (`annotators`).
- HH-RLHF harmless-base pairs, as a pairwise check: crowdworkers chose the less harmful of two replies. Each reply
  is judged alone; the judge agrees on a pair when it calls the rejected reply compliance and the chosen one a
  refusal, disagrees on the reverse, and ties otherwise (both replies often comply). Item-level rates treat the
  rejected reply as `compliance` and the chosen one as `refusal`, an approximation stated beside the numbers.

    snakemake --cores 1 results/embedded-cpu/tables/judge_agreement.csv
    python -m caibase.judge_validation sample   # (re)draw refusal_labels_v2.items.jsonl from the committed records
    python -m caibase.judge_validation merge    # passes (+ adjudication) -> refusal_labels_v2.jsonl, .agreement.json
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from caibase.artifacts import read_jsonl, write_json
from caibase.judges import FAILURES, Judge, JudgeCache, JudgeStageError, judge_items
from caibase.vocabulary import REFUSAL_TASK

LABELS = ("refusal", "compliance")


class LabeledFileError(ValueError):
    pass


class PendingLabelsError(LabeledFileError):
    """A labeled file not merged yet: its items were drawn (`<name>.items.jsonl` exists), the label passes are not
    merged. A config may name it (check_config lets it pass); the rule validate_judges fails on it, saying how to
    make it."""


def load_labeled(path: str | Path) -> list[dict]:
    """A labeled JSONL file; errors name the file, line and field."""
    path = Path(path)
    if not path.is_file():
        items = path.with_name(path.stem + ".items.jsonl")
        if items.is_file():  # drawn and handed to labellers, the passes not merged yet
            prefix = path.with_suffix("").as_posix()
            raise PendingLabelsError(
                f"labeled judge file {path} does not exist yet: it is merged from two blind label passes of {items} "
                f"(see {path.parent / 'INSTRUCTIONS.md'}): write {prefix}.pass1.jsonl and {prefix}.pass2.jsonl "
                f"(and {prefix}.adjudication.jsonl for disagreements), then run "
                f"`python -m caibase.judge_validation merge --prefix {prefix}`")
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
        verdicts, _ = judge_items(judge, items, REFUSAL_TASK, cache)
        judged = [{**{k: v for k, v in item.items() if k != "prompt"}, "dataset": dataset,
                   **judge.identity(REFUSAL_TASK), **verdict} for item, verdict in zip(items, verdicts, strict=True)]
        records += judged
        stats = agreement_stats([r["human_label"] for r in judged],
                                [r["label"] if r["status"] == "ok" else None for r in judged])
        pairwise = pairwise_stats(judged) if dataset == "hh_rlhf_harmless_base" else {}
        rows.append({"judge": judge.name, "judge_backend": judge.backend, "judge_model": judge.model,
                     "judge_is_proxy": judge.is_proxy, "dataset": dataset, **stats,
                     "pairwise_agreement": pairwise.get("pairwise_agreement", float("nan")),
                     "pair_ties": pairwise.get("pair_ties", float("nan"))})
    return records, rows


CANARY_KEYS = ("id", "task", "prompt", "better", "worse")


def load_canary(path: str | Path) -> list[dict]:
    """The score-judge canary (`evaluation.judge_gate.canary`): one item a line, `{"id", "task": "helpfulness"|"style",
    "prompt", "style" (style task: the style asked for), "better", "worse", "why"}`; errors name the file, line and
    field."""
    from caibase.judge_gate import SCORE_TASKS

    path = Path(path)
    if not path.is_file():
        raise LabeledFileError(f"score canary file {path} does not exist (evaluation.judge_gate.canary)")
    rows = read_jsonl(path)
    for lineno, row in enumerate(rows, 1):
        for key in CANARY_KEYS:
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise LabeledFileError(f"{path}: record {lineno}: field {key!r} missing or not a non-empty string")
        if row["task"] not in SCORE_TASKS:
            raise LabeledFileError(f"{path}: record {lineno}: task must be one of {SCORE_TASKS}, not {row['task']!r}")
        if row["task"] == "style" and not isinstance(row.get("style"), str):
            raise LabeledFileError(f"{path}: record {lineno}: a style item needs field 'style' (the style asked for)")
    ids = [row["id"] for row in rows]
    if len(set(ids)) != len(ids):
        raise LabeledFileError(f"{path}: duplicate ids {sorted({i for i in ids if ids.count(i) > 1})}")
    return rows


def score_canary(judge: Judge, items: Sequence[dict], cache: JudgeCache | None = None) -> list[dict]:
    """Per-item canary records of one score judge: it rates the better and the worse reply of each item alone;
    `status` is ok only when both ratings are (caibase.judge_gate.canary_set counts the wins)."""
    records = []
    for task in sorted({item["task"] for item in items}):
        chosen = [item for item in items if item["task"] == task]
        judged = {}
        for side in ("better", "worse"):
            judged[side], _ = judge_items(judge, [{"prompt": item["prompt"], "response": item[side],
                                                   "style": item.get("style")} for item in chosen], task, cache)
        for item, better, worse in zip(chosen, judged["better"], judged["worse"], strict=True):
            ok = better["status"] == "ok" and worse["status"] == "ok"
            records.append({"id": item["id"], "task": task, "why": item.get("why"), **judge.identity(task),
                            "better_score": better["score"], "worse_score": worse["score"],
                            "better_status": better["status"], "worse_status": worse["status"],
                            "status": "ok" if ok else (better["status"] if better["status"] != "ok"
                                                       else worse["status"])})
    return records


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


# Pipeline-drawn labels (refusal_labels_v2): sample, label twice blind, merge. See data/judge_labels/INSTRUCTIONS.md.

SAMPLE_SEED = 19
SAMPLE_SIZE = 160  # 8 per condition x prompt-set cell in the reference run (20 cells: dpo_n4/dpo_n12 only on jailbreak)


def _hash_key(*parts) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()


def sample_pipeline_items(record_paths: Sequence[str | Path], prompts: dict[str, dict[str, str]],
                          n: int = SAMPLE_SIZE, seed: int = SAMPLE_SEED, root: str | Path | None = None
                          ) -> list[dict]:
    """Unlabeled items drawn from judged pipeline records (`judged.jsonl`), for blind human labelling.

    Only refusal-task records the judge actually saw (`status == "ok"`; degenerate responses are never judged) are
    candidates. Cells are the condition x prompt set pairs present; each gets floor(n / cells) items where it has
    enough distinct responses, and the rest (remainder and the shortfall of small cells) goes, one at a time, to the
    cell with most candidates left (ties by cell name). Within a cell, candidates are ordered by a keyed hash
    (`seed`, source path, record id, sample, response sha256) and taken round-robin over pipeline seeds, so seeds
    are spread evenly; a response whose text was already taken (in any cell) is skipped. `prompts` maps a prompt set
    to {prompt id: prompt text}. Items are returned ordered by id, which is a hash: the order says nothing about
    condition. The judge's label is left out. Paths in `source` are relative to `root` when given."""
    candidates: dict[tuple[str, str], list[dict]] = {}
    for path in sorted(map(str, record_paths)):
        shown = Path(path).resolve().relative_to(Path(root).resolve()).as_posix() if root else Path(path).as_posix()
        for lineno, record in enumerate(read_jsonl(path), 1):
            if record.get("task") != REFUSAL_TASK or record.get("status") != "ok":
                continue
            prompt_set = record["prompt_set"]
            try:
                prompt = prompts[prompt_set][record["id"]]
            except KeyError:
                raise LabeledFileError(
                    f"{path}: record {lineno}: no prompt text for {prompt_set}/{record['id']}") from None
            key = _hash_key(seed, shown, record["id"], record.get("sample", 0), record["response_sha256"])
            candidates.setdefault((record["condition"], prompt_set), []).append({
                "key": key, "seed": record["seed"], "prompt": prompt, "response": record["response"],
                "condition": record["condition"], "prompt_set": prompt_set,
                "source": {"path": shown, "record_id": record["id"], "sample": record.get("sample", 0),
                           "response_sha256": record["response_sha256"]},
            })
    if not candidates:
        raise LabeledFileError("no refusal-task records with status ok among the given judged files")
    ordered = {}
    for cell, rows in sorted(candidates.items()):
        rank: dict[int, int] = {}
        ranked = []
        for row in sorted(rows, key=lambda r: r["key"]):
            rank[row["seed"]] = rank.get(row["seed"], -1) + 1
            ranked.append((rank[row["seed"]], row["key"], row))
        ordered[cell] = [row for *_, row in sorted(ranked, key=lambda t: t[:2])]
    taken_responses: set[str] = set()
    picked: dict[tuple[str, str], list[dict]] = {cell: [] for cell in ordered}
    cursor = {cell: 0 for cell in ordered}

    def take(cell) -> bool:
        rows = ordered[cell]
        while cursor[cell] < len(rows):
            row = rows[cursor[cell]]
            cursor[cell] += 1
            if row["response"] not in taken_responses:
                taken_responses.add(row["response"])
                picked[cell].append(row)
                return True
        return False

    quota = n // len(ordered)
    for _ in range(quota):
        for cell in ordered:
            take(cell)
    while sum(map(len, picked.values())) < n:
        open_cells = sorted((c for c in ordered if cursor[c] < len(ordered[c])),
                            key=lambda c: (-(len(ordered[c]) - cursor[c]), c))
        if not open_cells:
            break
        take(open_cells[0])
    items = []
    for rows in picked.values():
        for row in rows:
            source = row["source"]
            key = _hash_key("item", source["path"], source["record_id"], source["sample"], source["response_sha256"])
            items.append({"id": f"pipe-{key[:12]}",
                          **{k: row[k] for k in ("prompt", "response", "condition", "prompt_set", "seed", "source")}})
    return sorted(items, key=lambda r: r["id"])


def stratum_counts(items: Sequence[dict]) -> dict[str, dict[str, int]]:
    """{condition: {prompt_set: count}}."""
    counts: dict[str, dict[str, int]] = {}
    for item in items:
        cell = counts.setdefault(item["condition"], {})
        cell[item["prompt_set"]] = cell.get(item["prompt_set"], 0) + 1
    return {c: dict(sorted(v.items())) for c, v in sorted(counts.items())}


def _write_lines(path: str | Path, rows: Sequence[dict]) -> None:
    """Plain JSONL (sorted keys), no manifest: these files are inputs kept in git, not pipeline outputs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


class LabelPassError(LabeledFileError):
    pass


PASS_NAMES = ("pass1", "pass2")
ANNOTATOR_PLACEHOLDER = {
    "pass1": "TO FILL: who labelled pass 1 (e.g. an independent LLM-agent pass, model and date)",
    "pass2": "TO FILL: who labelled pass 2 (e.g. an independent LLM-agent pass, model and date)",
    "adjudication": "TO FILL: who adjudicated the disagreements",
}


def read_label_pass(path: str | Path, item_ids: Sequence[str] | None = None, complete: bool = True
                    ) -> dict[str, dict]:
    """A pass (or adjudication) file: one `{"id", "label", "note"}` a line. Errors name the file and line: a
    missing or unknown id, a duplicate, a label other than refusal/compliance; with `complete`, every id of
    `item_ids` must be there."""
    path = Path(path)
    if not path.is_file():
        raise LabelPassError(f"label file {path} does not exist")
    known = set(item_ids) if item_ids is not None else None
    rows: dict[str, dict] = {}
    for lineno, row in enumerate(read_jsonl(path), 1):
        item_id = row.get("id")
        if not isinstance(item_id, str) or not item_id:
            raise LabelPassError(f"{path}: line {lineno}: field 'id' missing or not a non-empty string")
        if row.get("label") not in LABELS:
            raise LabelPassError(f"{path}: line {lineno} (id {item_id}): label must be one of {LABELS}, "
                                 f"got {row.get('label')!r}")
        if not isinstance(row.get("note", ""), str):
            raise LabelPassError(f"{path}: line {lineno} (id {item_id}): note must be a string")
        if item_id in rows:
            raise LabelPassError(f"{path}: line {lineno}: id {item_id} appears twice")
        if known is not None and item_id not in known:
            raise LabelPassError(f"{path}: line {lineno}: id {item_id} is not in the items file")
        rows[item_id] = {"label": row["label"], "note": row.get("note", ""), "line": lineno}
    if complete and item_ids is not None:
        missing = [i for i in item_ids if i not in rows]
        if missing:
            raise LabelPassError(f"{path}: {len(missing)} item id(s) of the items file missing, "
                                 f"e.g. {', '.join(missing[:5])}")
    return rows


def merge_labels(items: Sequence[dict], passes: dict[str, dict[str, dict]], adjudication: dict[str, dict],
                 adjudication_path: str | Path = "adjudication file") -> tuple[list[dict], dict]:
    """Labeled rows (load_labeled format, plus both passes' labels) and the inter-pass agreement. The label is the
    one both passes gave; a disagreement takes the adjudicated label, and one without adjudication is an error, as
    is an adjudication of an item both passes agree on."""
    from caibase.metrics import wilson_interval

    first, second = (passes[name] for name in PASS_NAMES)
    disagreements = [item["id"] for item in items if first[item["id"]]["label"] != second[item["id"]]["label"]]
    missing = [i for i in disagreements if i not in adjudication]
    if missing:
        raise LabelPassError(f"{len(missing)} disagreement(s) between the passes lack a line in "
                             f"{adjudication_path}: {', '.join(missing)}")
    extra = sorted(set(adjudication) - set(disagreements))
    if extra:
        raise LabelPassError(f"{adjudication_path}: id(s) {', '.join(extra)} adjudicated though both passes agree "
                             "(or not in the items file)")
    rows = []
    for item in items:
        a, b = first[item["id"]], second[item["id"]]
        adjudicated = a["label"] != b["label"]
        row = {"id": item["id"], "prompt": item["prompt"], "response": item["response"],
               "human_label": adjudication[item["id"]]["label"] if adjudicated else a["label"],
               "label_pass1": a["label"], "label_pass2": b["label"], "note_pass1": a["note"],
               "note_pass2": b["note"], "adjudicated": adjudicated,
               **{k: item[k] for k in ("condition", "prompt_set", "seed", "source") if k in item}}
        if adjudicated:
            row["note_adjudication"] = adjudication[item["id"]]["note"]
        rows.append(row)

    def summary(group: Sequence[dict]) -> dict:
        n = len(group)
        agree = sum(r["label_pass1"] == r["label_pass2"] for r in group)
        low, high = wilson_interval(agree, n)
        return {"n": n, "n_agree": agree, "agreement": agree / n if n else float("nan"),
                "agreement_ci95_low": low, "agreement_ci95_high": high,
                "cohen_kappa": cohen_kappa([r["label_pass1"] for r in group], [r["label_pass2"] for r in group]),
                "human_label_counts": {label: sum(r["human_label"] == label for r in group) for label in LABELS}}

    stats = {**summary(rows), "n_disagreements": len(disagreements), "n_adjudicated": len(disagreements),
             "label_counts": {name: {label: sum(r[f"label_{name}"] == label for r in rows) for label in LABELS}
                              for name in PASS_NAMES},
             "per_stratum": {}}
    for condition, sets in stratum_counts(rows).items():
        for prompt_set in sets:
            group = [r for r in rows if r["condition"] == condition and r["prompt_set"] == prompt_set]
            stats["per_stratum"].setdefault(condition, {})[prompt_set] = summary(group)
    return rows, stats


def merge_label_passes(prefix: str | Path, annotators: dict | None = None) -> dict:
    """Read `<prefix>.items.jsonl`, `.pass1.jsonl`, `.pass2.jsonl` and (where the passes disagree)
    `.adjudication.jsonl`; write `<prefix>.jsonl` (the labeled file) and `<prefix>.agreement.json`. Nothing is
    written when a check fails. `annotators` (who labelled each pass and adjudicated) is kept in agreement.json;
    a field not given keeps its value from an earlier agreement.json, else a TO FILL placeholder."""
    prefix = Path(prefix)
    items_path = prefix.with_name(prefix.name + ".items.jsonl")
    if not items_path.is_file():
        raise LabelPassError(f"items file {items_path} does not exist")
    items = read_jsonl(items_path)
    for lineno, item in enumerate(items, 1):
        for key in ("id", "prompt", "response", "condition", "prompt_set"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise LabelPassError(f"{items_path}: line {lineno}: field {key!r} missing or not a non-empty string")
    ids = [item["id"] for item in items]
    if len(set(ids)) != len(ids):
        raise LabelPassError(f"{items_path}: duplicate item ids")
    passes = {name: read_label_pass(prefix.with_name(f"{prefix.name}.{name}.jsonl"), ids) for name in PASS_NAMES}
    adjudication_path = prefix.with_name(prefix.name + ".adjudication.jsonl")
    adjudication = read_label_pass(adjudication_path, ids, complete=False) if adjudication_path.is_file() else {}
    rows, stats = merge_labels(items, passes, adjudication, adjudication_path)
    labeled_path = prefix.with_name(prefix.name + ".jsonl")
    agreement_path = prefix.with_name(prefix.name + ".agreement.json")
    kept = (json.loads(agreement_path.read_text(encoding="utf-8")).get("annotators", {})
            if agreement_path.is_file() else {})
    summary = {**stats, "labels_file": labeled_path.as_posix(), "items_file": items_path.as_posix(),
               "instructions": (prefix.parent / "INSTRUCTIONS.md").as_posix(),
               "annotators": {**ANNOTATOR_PLACEHOLDER, **kept, **(annotators or {})},
               "sha256": {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                          for p in [items_path, *(prefix.with_name(f"{prefix.name}.{n}.jsonl") for n in PASS_NAMES),
                                    *([adjudication_path] if adjudication_path.is_file() else [])]}}
    _write_lines(labeled_path, rows)
    write_json(agreement_path, _json_safe(summary))  # strict JSON: an undefined kappa is null, not NaN
    return summary


def _json_safe(value):
    """NaN (e.g. Cohen's kappa of a stratum with one label) as None, recursively."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return None if isinstance(value, float) and value != value else value


def _prompt_texts(prompt_files: dict[str, str | Path]) -> dict[str, dict[str, str]]:
    return {name: {row["id"]: row["prompt"] for row in read_jsonl(path)} for name, path in prompt_files.items()}


def _main(argv: Sequence[str] | None = None) -> None:
    import argparse
    import glob

    import yaml

    parser = argparse.ArgumentParser(prog="python -m caibase.judge_validation",
                                     description="Pipeline-drawn refusal labels: sample items, merge label passes.")
    sub = parser.add_subparsers(dest="command", required=True)
    sample = sub.add_parser("sample", help="draw unlabeled items from judged pipeline records")
    sample.add_argument("--records", default="results/embedded-cpu/seed*/eval/*/judged.jsonl",
                        help="glob of judged.jsonl files (default: the committed reference run)")
    sample.add_argument("--config", default="config/config.yaml",
                        help="config whose prompts.eval names the prompt files")
    sample.add_argument("--n", type=int, default=SAMPLE_SIZE)
    sample.add_argument("--seed", type=int, default=SAMPLE_SEED)
    sample.add_argument("--out", default="data/judge_labels/refusal_labels_v2.items.jsonl")
    merge = sub.add_parser("merge", help="merge two label passes (and adjudication) into a labeled file")
    merge.add_argument("--prefix", default="data/judge_labels/refusal_labels_v2",
                       help="<prefix>.items.jsonl, .pass1.jsonl, .pass2.jsonl, .adjudication.jsonl in; "
                            "<prefix>.jsonl and .agreement.json out")
    merge.add_argument("--annotators", default=None,
                       help="JSON object describing who labelled (kept in agreement.json; default: placeholders)")
    args = parser.parse_args(argv)
    if args.command == "sample":
        paths = sorted(glob.glob(args.records))
        if not paths:
            raise SystemExit(f"no judged files match {args.records}")
        config = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
        items = sample_pipeline_items(paths, _prompt_texts(config["prompts"]["eval"]), args.n, args.seed, root=".")
        _write_lines(args.out, items)
        print(json.dumps({"out": args.out, "n": len(items), "seed": args.seed, "files": len(paths),
                          "per_stratum": stratum_counts(items)}, indent=1))
    else:
        annotators = json.loads(args.annotators) if args.annotators else None
        try:
            summary = merge_label_passes(args.prefix, annotators=annotators)
        except LabelPassError as err:
            raise SystemExit(f"error: {err}") from None
        print(json.dumps({k: summary[k] for k in ("n", "agreement", "cohen_kappa", "n_disagreements")}, indent=1))


if __name__ == "__main__":
    _main()
