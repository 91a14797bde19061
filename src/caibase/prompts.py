"""Prompt sets (JSON Lines with id, category, split, prompt[, response, style, reference]) and the train/eval
contamination check. `reference`: an answer whose log-likelihood under a policy is the judge-free helpfulness proxy
(caibase.likelihood; the helpful set's were written by an LLM agent for this package)."""

from __future__ import annotations

import hashlib
import math
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


# The base-model transcript format (the CAI paper's): a turn ends where the next speaker or section would start.
TURN_STOPS = ("\n\nHuman:", "\nHuman:", "\n\nAssistant:", "\n\n-----")
RESPONSE_STOPS = TURN_STOPS + ("\n\nCritiqueRequest:",)


def dialogue_prompt(human: str) -> str:
    """The base-model conversation format used for SFT, generation and DPO alike."""
    return f"\n\nHuman: {human.strip()}\n\nAssistant:"


def slcai_sft_records(revision_records, all_revisions: bool = False) -> list[dict]:
    """SL-CAI training examples: the red-team prompt with its final revision (or every non-degenerate revision)
    as the completion, in the same prompt/completion format as helpful SFT."""
    examples = []
    for record in revision_records:
        rounds = record["rounds"] if all_revisions else record["rounds"][-1:]
        for entry in rounds:
            if entry["revision_degenerate"] is None:
                examples.append({"prompt": dialogue_prompt(record["prompt"]), "completion": " " + entry["revision"]})
    return examples


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


def _prepare(text: str) -> tuple[str, set[tuple[str, ...]]]:
    """A text's normalized form and its word-trigram shingles, computed once."""
    normalized = normalize(text)
    return normalized, _shingles(normalized)


class NearDuplicateIndex:
    """Which of a fixed list of texts a query text near-duplicates, with exactly the hits of `near_duplicate`.

    Each text is normalized once. Candidates come from an exact inverted index with prefix filtering on the
    word-trigram shingles (shingles ranked rarest first; a text is indexed under the first |S| - ceil(t|S|) + 1
    of its ranked shingles): Jaccard >= t needs at least ceil(t * max(|A|, |B|)) shared shingles, and then the
    rarest shared shingle lies in both prefixes, so no pair that passes the test is missed. Equal normalized texts
    have equal shingles and so always meet. Each candidate gets the same test as `near_duplicate`; with
    `threshold <= 0` every pair passes it, so every text matches. Cost grows with the number of candidates, not
    with the product of the set sizes."""

    _SLACK = 1e-9  # keeps the prefix long enough where t * |S| is an integer up to float rounding

    def __init__(self, texts=(), threshold: float = 0.7, *, prepared=None):
        self.threshold = threshold
        items = list(prepared) if prepared is not None else [_prepare(text) for text in texts]
        frequency: dict[tuple[str, ...], int] = {}
        for _, shingles in items:
            for shingle in shingles:
                frequency[shingle] = frequency.get(shingle, 0) + 1
        # rank: rarest first, ties by first appearance (any fixed total order keeps the filter exact)
        self._rank = {shingle: rank for rank, shingle in
                      enumerate(sorted(frequency, key=frequency.__getitem__))}
        self._normalized = [normalized for normalized, _ in items]
        self._ids = [frozenset(self._rank[s] for s in shingles) for _, shingles in items]
        self._postings: dict[int, list[int]] = {}
        for position, ids in enumerate(self._ids):
            for rank in sorted(ids)[: self._prefix_length(len(ids))]:
                self._postings.setdefault(rank, []).append(position)

    def __len__(self) -> int:
        return len(self._ids)

    def _prefix_length(self, size: int) -> int:
        need = self.threshold * size
        overlap = max(1, math.ceil(need - self._SLACK)) if need <= size else size  # also NaN and inf: size
        return max(1, size - overlap + 1)

    def matches(self, text: str) -> list[int]:
        """Positions (ascending) of the indexed texts that `text` near-duplicates."""
        return self.matches_prepared(*_prepare(text))

    def matches_prepared(self, normalized: str, shingles: set[tuple[str, ...]]) -> list[int]:
        if self.threshold <= 0:
            return list(range(len(self._ids)))
        # shingles not in the index rank first: they hold prefix places but can match nothing
        ranks = sorted(self._rank.get(s, -1) for s in shingles)
        candidates: set[int] = set()
        for rank in ranks[: self._prefix_length(len(ranks))]:
            if rank >= 0:
                candidates.update(self._postings.get(rank, ()))
        known = {rank for rank in ranks if rank >= 0}
        hits = []
        for position in sorted(candidates):
            if self._normalized[position] == normalized:
                hits.append(position)
                continue
            other = self._ids[position]
            shared = len(known & other)
            if shared / (len(shingles) + len(other) - shared) >= self.threshold:
                hits.append(position)
        return hits


def find_contamination(sets: list[PromptSet], threshold: float = 0.7) -> list[dict]:
    """Every (train item, eval item) pair across all train/eval set pairs that is an exact or near duplicate
    (`near_duplicate`), in the order of the sets, then of train items, then of eval items. Each text is normalized
    once and each evaluation set indexed once (`NearDuplicateIndex`)."""
    prepared: dict[int, list[tuple[str, set]]] = {}
    indexes: dict[int, NearDuplicateIndex] = {}

    def prepare(i: int) -> list[tuple[str, set]]:
        if i not in prepared:
            prepared[i] = [_prepare(r["prompt"]) for r in sets[i].records]
        return prepared[i]

    hits = []
    for i, j in combinations(range(len(sets)), 2):
        first, second = sets[i], sets[j]
        if first.split == second.split:
            continue
        ti, ei = (i, j) if first.split == "train" else (j, i)
        train, evaluation = sets[ti], sets[ei]
        if ei not in indexes:
            indexes[ei] = NearDuplicateIndex(threshold=threshold, prepared=prepare(ei))
        for t, item in zip(train.records, prepare(ti)):
            for position in indexes[ei].matches_prepared(*item):
                e = evaluation.records[position]
                hits.append({"train_set": train.name, "train_id": t["id"], "eval_set": evaluation.name,
                             "eval_id": e["id"], "train_prompt": t["prompt"], "eval_prompt": e["prompt"]})
    return hits


def quadratic_find_contamination(sets: list[PromptSet], threshold: float = 0.7, near=near_duplicate) -> list[dict]:
    """The reference check `find_contamination` must equal: `near` on every (train, eval) pair, same output and
    order. Quadratic (hours at 10^5 prompts); kept for tests and benchmarks/bench_data.py."""
    hits = []
    for first, second in combinations(sets, 2):
        if first.split == second.split:
            continue
        train, evaluation = (first, second) if first.split == "train" else (second, first)
        for t in train.records:
            for e in evaluation.records:
                if near(t["prompt"], e["prompt"], threshold):
                    hits.append({"train_set": train.name, "train_id": t["id"], "eval_set": evaluation.name,
                                 "eval_id": e["id"], "train_prompt": t["prompt"], "eval_prompt": e["prompt"]})
    return hits


def quadratic_clash(exclude: list[PromptSet], threshold: float = 0.7, near=near_duplicate):
    """The reference `clash_of` for `hh_rlhf_redteam_records`: the first excluded prompt `near` a row's prompt."""
    return lambda _index, prompt: next((f"{s.name}/{r['id']}" for s in exclude for r in s.records
                                        if near(prompt, r["prompt"], threshold)), None)


def first_human_turn(transcript: str) -> str:
    """The first `Human:` turn of an HH-RLHF transcript (`\\n\\nHuman: ...\\n\\nAssistant: ...`)."""
    match = re.search(r"Human:(.*?)(?:\n\nAssistant:|$)", transcript, flags=re.S)
    return match.group(1).strip() if match else ""


def hh_rlhf_key(row: dict) -> tuple[str, str]:
    """The stable order HH-RLHF rows are selected in: the sha256 of the first Human turn, then of the whole row
    (chosen and rejected) for rows sharing a prompt. Taking the first N rows in this order instead of file order
    makes a selection depend only on which rows a file holds, not on the file: the mirror's 1,992-row subset and the
    2,312-row upstream file select the same rows wherever both hold them."""
    prompt = first_human_turn(row["chosen"])
    whole = f"{row['chosen']}\0{row['rejected']}"
    return hashlib.sha256(prompt.encode()).hexdigest(), hashlib.sha256(whole.encode()).hexdigest()


def hh_rlhf_id(prefix: str, row: dict) -> str:
    """A row's id, the same in every file that holds it (not its line number)."""
    return f"{prefix}-{hh_rlhf_key(row)[1][:16]}"


def hh_rlhf_redteam_records(rows: list[dict], limit: int, exclude: list[PromptSet], threshold: float = 0.7,
                            max_chars: int = 400, clash_of=None) -> tuple[list[dict], list[dict]]:
    """Up to `limit` red-team training prompts from HH-RLHF transcripts (first Human turn), in the stable order of
    `hh_rlhf_key`, unique after normalization, and not near-duplicating any prompt in `exclude` (`near_duplicate`,
    through one `NearDuplicateIndex` of `exclude`; a dropped row names the first such prompt); also returns the
    dropped ones (`row`: the index in `rows`). `clash_of(row_index, prompt)` replaces the index (tests, benchmarks:
    `quadratic_clash`)."""
    if clash_of is None:
        excluded = [f"{s.name}/{r['id']}" for s in exclude for r in s.records]
        index_of_excluded = NearDuplicateIndex([r["prompt"] for s in exclude for r in s.records], threshold)

        def clash_of(_index, prompt):
            key = normalize(prompt)
            matches = index_of_excluded.matches_prepared(key, _shingles(key))
            return excluded[matches[0]] if matches else None

    records, dropped, seen = [], [], set()
    for index in sorted(range(len(rows)), key=lambda i: hh_rlhf_key(rows[i])):
        if len(records) >= limit:
            break
        row = rows[index]
        prompt = first_human_turn(row["chosen"])
        key = normalize(prompt)
        if not key or len(prompt) > max_chars or key in seen:
            continue
        seen.add(key)
        clash = clash_of(index, prompt)
        if clash:
            dropped.append({"row": index, "id": hh_rlhf_id("hh-rlhf-harmless-test", row), "prompt": prompt,
                            "near_duplicate_of": clash})
            continue
        records.append({"id": hh_rlhf_id("hh-rlhf-harmless-test", row), "category": "hh-rlhf", "split": "train",
                        "prompt": prompt})
    return records, dropped
