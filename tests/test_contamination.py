"""The indexed near-duplicate check (`find_contamination`, `hh_rlhf_redteam_records`) against the quadratic one it
replaced, kept here as the reference: the same hits, in the same order, on the shipped sets and the HH-RLHF rows."""

import math
import random
import time
from functools import cache

import pytest

from caibase.config import prompt_set_paths
from caibase.prompts import (
    NearDuplicateIndex,
    PromptSet,
    _shingles,
    find_contamination,
    first_human_turn,
    hh_rlhf_redteam_records,
    load_prompt_set,
    near_duplicate,
    normalize,
    quadratic_clash,
    quadratic_find_contamination,
)

from conftest import load_config

# --- the reference: the quadratic check as it was (each pair compared; normalization cached, which changes no
# result, so the HH-RLHF comparisons stay fast) ---

@cache
def _prepared(text):
    normalized = normalize(text)
    return normalized, frozenset(_shingles(normalized))


def _reference_near_duplicate(a, b, threshold=0.7):
    (na, sa), (nb, sb) = _prepared(a), _prepared(b)
    if na == nb:
        return True
    return len(sa & sb) / len(sa | sb) >= threshold


def _reference_find_contamination(sets, threshold=0.7):
    return quadratic_find_contamination(sets, threshold, near=_reference_near_duplicate)


def _reference_hh_rlhf_redteam_records(rows, limit, exclude, threshold=0.7, max_chars=400):
    return hh_rlhf_redteam_records(rows, limit, exclude, threshold, max_chars,
                                   clash_of=quadratic_clash(exclude, threshold, near=_reference_near_duplicate))


def prompt_set(name, split, prompts):
    return PromptSet(name, None, tuple({"id": f"{name}-{i}", "category": "c", "split": split, "prompt": p}
                                       for i, p in enumerate(prompts)))


def shipped_sets(repo):
    return [load_prompt_set(path.stem, path) for path in sorted((repo / "data" / "prompts").glob("*.jsonl"))]


def eval_sets(repo):
    config = load_config("config.yaml")
    paths = prompt_set_paths(config, repo)
    return [load_prompt_set(name, paths[name]) for name in config["prompts"]["eval"]]


def test_shipped_sets_same_hits_as_the_reference(repo):
    sets = shipped_sets(repo)
    assert find_contamination(sets) == _reference_find_contamination(sets) == []  # the default: still clean
    assert load_config("config.yaml")["prompts"]["near_duplicate_threshold"] == 0.7
    for threshold in (0.5, 0.3, 0.1, 0.0):  # lower thresholds give hits to compare (0: every pair)
        hits = find_contamination(sets, threshold)
        assert hits == _reference_find_contamination(sets, threshold)
    assert len(find_contamination(sets, 0.0)) == 21754 and len(find_contamination(sets, 0.1)) > 0


def test_hh_rlhf_rows_same_hits_as_the_reference(repo, data_mirror):
    from caibase.sources import hh_rlhf_harmless_rows

    turns = [first_human_turn(row["chosen"]) for row in hh_rlhf_harmless_rows()]
    sets = shipped_sets(repo) + [prompt_set("hh", "train", turns)]
    for threshold in (0.7, 0.3, 0.1):
        hits = find_contamination(sets, threshold)
        assert hits == _reference_find_contamination(sets, threshold)
        assert threshold < 0.5 or hits == []
    # HH-RLHF holds near-duplicates of its own prompts: one half as train, the other as eval
    halves = [prompt_set("first", "train", turns[:1000]), prompt_set("second", "eval", turns[1000:])]
    for threshold in (0.9, 0.7, 0.5):
        hits = find_contamination(halves, threshold)
        assert hits and hits == _reference_find_contamination(halves, threshold)


def test_redteam_pool_selects_the_same_rows(repo, data_mirror):
    """hh_rlhf_redteam_records: records and dropped rows as before, at every config's size and beyond."""
    from caibase.sources import hh_rlhf_harmless_rows

    rows, evaluation = hh_rlhf_harmless_rows(), eval_sets(repo)
    for limit in (4, 1000, 2000, len(rows)):  # smoke, paper, scale, all
        records, dropped = hh_rlhf_redteam_records(rows, limit, evaluation)
        assert (records, dropped) == _reference_hh_rlhf_redteam_records(rows, limit, evaluation)
        assert dropped == [] and len(records) == min(limit, 1872)  # 1,872 distinct short first turns
    for threshold in (0.3, 0.1):  # with drops: the same first clash named
        result = hh_rlhf_redteam_records(rows, len(rows), evaluation, threshold)
        assert result[1] and result == _reference_hh_rlhf_redteam_records(rows, len(rows), evaluation, threshold)


def plant(prompt, how):
    words = normalize(prompt).split()
    if how == "shout":
        return prompt.upper().replace(".", "!").replace("?", " ?? ")
    if how == "please":
        return prompt + " please"
    if how == "drop_first":
        return " ".join(words[1:])
    if how == "swap_last":
        return " ".join(words[:-1] + ["tomorrow"])
    raise ValueError(how)


def test_planted_paraphrases_and_near_copies_are_found(repo):
    evaluation = eval_sets(repo)
    train_sets = [s for s in shipped_sets(repo) if s.split == "train"]
    planted, expected = [], []
    for s in evaluation:
        for r in s.records:
            for how in ("shout", "please", "drop_first", "swap_last"):
                if len(normalize(r["prompt"]).split()) >= 12:
                    planted.append(plant(r["prompt"], how))
                    expected.append((f"planted-{len(planted) - 1}", s.name, r["id"]))
    assert len(expected) > 100
    sets = train_sets + [prompt_set("planted", "train", planted)] + evaluation
    hits = find_contamination(sets)
    assert hits == _reference_find_contamination(sets)
    found = {(h["train_id"], h["eval_set"], h["eval_id"]) for h in hits}
    assert set(expected) <= found
    assert all(h["train_set"] == "planted" for h in hits)  # the shipped ones stay clean beside them


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.5, 0.7, 0.75, 0.8, 1.0, 1.5, math.nan])
def test_index_matches_reference_on_edge_cases(threshold):
    """Short texts (fewer words than a shingle), empty after normalization, thresholds at a Jaccard value."""
    texts = ["", "!!", "a", "a b", "A, b.", "a b c", "a b c d", "a b c d e", "b c d e", "x y z", "a b c d e f g h",
             "a b c d e f g", "b c d e f g h", "one two three four five", "one two three four five six"]
    for i, text in enumerate(texts):
        index = NearDuplicateIndex(texts, threshold)
        assert index.matches(text) == [j for j, other in enumerate(texts)
                                       if near_duplicate(text, other, threshold)], (i, text)


def synthetic_prompts(n, seed):
    rng = random.Random(seed)
    openers = ["how do i", "can you tell me how to", "what is the best way to", "explain why", "write a story about",
               "is it legal to", "help me", "what happens if you"]
    vocabulary = [f"w{i}" for i in range(3000)]
    return [" ".join([rng.choice(openers)] + rng.choices(vocabulary, k=rng.randint(4, 20))) for _ in range(n)]


def test_index_is_subquadratic():
    """2,000 x 2,000 prompts (4 million pairs, about a minute the quadratic way) in a few seconds."""
    train, evaluation = synthetic_prompts(2000, 1), synthetic_prompts(2000, 2)
    evaluation[7] = train[3] + " please"
    start = time.perf_counter()
    hits = find_contamination([prompt_set("train", "train", train), prompt_set("eval", "eval", evaluation)])
    assert time.perf_counter() - start < 5
    assert ("train-3", "eval-7") in {(h["train_id"], h["eval_id"]) for h in hits}
