"""Prompt sets (JSON Lines with id, category, split, prompt[, response, style]) and the train/eval contamination check."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from caibase.artifacts import read_jsonl

REQUIRED = ("id", "category", "split", "prompt")
SPLITS = ("train", "eval")


class PromptSetError(ValueError):
    pass


@dataclass(frozen=True)
class PromptSet:
    name: str
    path: Path
    records: tuple[dict, ...]

    @property
    def split(self) -> str:
        return self.records[0]["split"]


def load_prompt_set(name: str, path: str | Path, *, require: tuple[str, ...] = ()) -> PromptSet:
    """Load and check one set; errors name the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise PromptSetError(f"prompt set {name!r}: file {path} does not exist")
    records = read_jsonl(path)
    if not records:
        raise PromptSetError(f"{path}: empty prompt set")
    seen: set[str] = set()
    for lineno, record in enumerate(records, 1):
        for key in REQUIRED + require:
            if not isinstance(record.get(key), str) or not record[key].strip():
                raise PromptSetError(f"{path}: record {lineno}: field {key!r} missing or not a non-empty string")
        if record["split"] not in SPLITS:
            raise PromptSetError(f"{path}: record {lineno} ({record['id']}): split must be one of {SPLITS}")
        if record["id"] in seen:
            raise PromptSetError(f"{path}: duplicate id {record['id']!r}")
        seen.add(record["id"])
    splits = {r["split"] for r in records}
    if len(splits) > 1:
        raise PromptSetError(f"{path}: mixes splits {sorted(splits)}; one split per file")
    return PromptSet(name, path, tuple(records))


def head_by_category(records: tuple[dict, ...] | list[dict], limit: int | None) -> list[dict]:
    """The first `limit` records taken round-robin over categories (in file order within each), so a limited set
    still covers every category (e.g. both benign and borderline prompts); all records when `limit` is None."""
    if limit is None or limit >= len(records):
        return list(records)
    queues: dict[str, list[dict]] = {}
    for record in records:
        queues.setdefault(record["category"], []).append(record)
    picked: list[dict] = []
    while len(picked) < limit:
        for queue in queues.values():
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    return picked


def chat_prompt(tokenizer, user_text: str) -> str:
    """One user turn in the tokenizer's own chat template, ready for the assistant's reply (matched prompting for
    an instruct model)."""
    if tokenizer.chat_template is None:
        raise ValueError("the model's tokenizer has no chat template; instruct_ref needs an instruct model")
    return tokenizer.apply_chat_template([{"role": "user", "content": user_text}], tokenize=False,
                                         add_generation_prompt=True)


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def _shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = text.split()
    return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def near_duplicate(a: str, b: str, threshold: float = 0.7) -> bool:
    """Same normalized text, or word-trigram Jaccard similarity of at least `threshold`."""
    na, nb = normalize(a), normalize(b)
    if na == nb:
        return True
    sa, sb = _shingles(na), _shingles(nb)
    return len(sa & sb) / len(sa | sb) >= threshold


def find_contamination(sets: list[PromptSet], threshold: float = 0.7) -> list[dict]:
    """Every (train item, eval item) pair across all train/eval set pairs that is an exact or near duplicate."""
    hits = []
    for first, second in combinations(sets, 2):
        if first.split == second.split:
            continue
        train, evaluation = (first, second) if first.split == "train" else (second, first)
        for t in train.records:
            for e in evaluation.records:
                if near_duplicate(t["prompt"], e["prompt"], threshold):
                    hits.append({"train_set": train.name, "train_id": t["id"], "eval_set": evaluation.name,
                                 "eval_id": e["id"], "train_prompt": t["prompt"], "eval_prompt": e["prompt"]})
    return hits


def first_human_turn(transcript: str) -> str:
    """The first `Human:` turn of an HH-RLHF transcript (`\\n\\nHuman: ...\\n\\nAssistant: ...`)."""
    match = re.search(r"Human:(.*?)(?:\n\nAssistant:|$)", transcript, flags=re.S)
    return match.group(1).strip() if match else ""


def hh_rlhf_redteam_records(rows: list[dict], limit: int, exclude: list[PromptSet], threshold: float = 0.7,
                            max_chars: int = 400) -> tuple[list[dict], list[dict]]:
    """Up to `limit` red-team training prompts from HH-RLHF transcripts (first Human turn), in file order, unique
    after normalization, and not near-duplicating any prompt in `exclude`; also returns the dropped ones."""
    records, dropped, seen = [], [], set()
    for index, row in enumerate(rows):
        if len(records) >= limit:
            break
        prompt = first_human_turn(row["chosen"])
        key = normalize(prompt)
        if not key or len(prompt) > max_chars or key in seen:
            continue
        seen.add(key)
        clash = next((f"{s.name}/{r['id']}" for s in exclude for r in s.records
                      if near_duplicate(prompt, r["prompt"], threshold)), None)
        if clash:
            dropped.append({"row": index, "prompt": prompt, "near_duplicate_of": clash})
            continue
        records.append({"id": f"hh-rlhf-harmless-test-{index:05d}", "category": "hh-rlhf", "split": "train",
                        "prompt": prompt})
    return records, dropped
