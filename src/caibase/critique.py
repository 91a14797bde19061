"""SL-CAI: critique and revise responses to red-team prompts, in the paper's base-model transcript format.

Each round samples one critique/revision principle per prompt (seeded by run seed, prompt id and round), asks for a
critique, then for a revision; the revision becomes the response the next round critiques. Every intermediate
critique and revision is kept.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from caibase.constitution import Constitution, CritiquePrinciple
from caibase.generation import GenerationSettings, degenerate_reason, generate, sample_seed
from caibase.prompts import TURN_STOPS, dialogue_prompt

FEWSHOT_SEPARATOR = "\n\n-----\n\n"
CRITIQUE_STOPS = TURN_STOPS + ("\n\nRevisionRequest:", "\n\nRevision:", "\n\nCritiqueRequest:", "\n\nCritique:")
REVISION_STOPS = TURN_STOPS + ("\n\nCritiqueRequest:", "\n\nRevisionRequest:", "\n\nCritique:")


def fewshot_prefix(constitution: Constitution, n_examples: int, rng: random.Random | None = None) -> str:
    """`n_examples` few-shot transcripts, sampled with `rng` (a tiny model copies a fixed example's content)."""
    pool = constitution.critique_fewshot
    examples = rng.sample(pool, min(n_examples, len(pool))) if rng else pool[:n_examples]
    return "".join(example + FEWSHOT_SEPARATOR for example in examples)


def critique_prompt(prefix: str, human: str, response: str, principle: CritiquePrinciple) -> str:
    return f"{prefix}Human: {human.strip()}\n\nAssistant: {response.strip()}\n\nCritiqueRequest: " \
           f"{principle.critique_request}\n\nCritique:"


def revision_prompt(prefix: str, human: str, response: str, principle: CritiquePrinciple, critique: str) -> str:
    return f"{critique_prompt(prefix, human, response, principle)} {critique.strip()}\n\nRevisionRequest: " \
           f"{principle.revision_request}\n\nRevision:"


def principle_rng(seed: int, prompt_id: str, round_index: int) -> random.Random:
    return random.Random(f"{seed}:{prompt_id}:round{round_index}")


def critique_and_revise(
    model,
    tokenizer,
    items: Sequence[dict],
    constitution: Constitution,
    rounds: int,
    fewshot_examples: int,
    settings: GenerationSettings,
    seed: int,
    shard_dir: str | Path | None = None,
    identity: dict | None = None,
) -> list[dict]:
    """`items` hold `id`, `prompt` and `response`; returns one record per item with every round kept.

    With `shard_dir`, every generation pass appends finished batches there, so an interrupted run resumes; each
    pass's shard carries a fingerprint of its prompts, seeds, settings, model and `identity` (see
    `caibase.generation.generate`), and one that does not match is discarded.
    """
    def shard(name: str) -> Path | None:
        return Path(shard_dir) / f"{name}.jsonl" if shard_dir else None

    prefixes = [
        fewshot_prefix(constitution, fewshot_examples, random.Random(f"{seed}:{item['id']}:fewshot")) for item in items
    ]
    current = [item["response"] for item in items]
    history: list[list[dict]] = [[] for _ in items]
    critique_settings = GenerationSettings(**{**settings.asdict(), "stop_strings": CRITIQUE_STOPS})
    revision_settings = GenerationSettings(**{**settings.asdict(), "stop_strings": REVISION_STOPS})
    for round_index in range(rounds):
        principles = [
            constitution.sample_critique_principle(principle_rng(seed, item["id"], round_index)) for item in items
        ]
        critiques = generate(
            model, tokenizer,
            [critique_prompt(prefixes[i], item["prompt"], current[i], principles[i]) for i, item in enumerate(items)],
            critique_settings,
            [sample_seed(seed, f"{item['id']}:critique:{round_index}") for item in items],
            shard_path=shard(f"round{round_index}-critique"), identity=identity,
            prompt_ids=[f"{item['id']} (critique round {round_index})" for item in items],
        )
        revisions = generate(
            model, tokenizer,
            [revision_prompt(prefixes[i], item["prompt"], current[i], principles[i], critiques[i].text)
             for i, item in enumerate(items)],
            revision_settings,
            [sample_seed(seed, f"{item['id']}:revision:{round_index}") for item in items],
            shard_path=shard(f"round{round_index}-revision"), identity=identity,
            prompt_ids=[f"{item['id']} (revision round {round_index})" for item in items],
        )
        for i in range(len(items)):
            history[i].append({
                "round": round_index,
                "principle_id": principles[i].id,
                "critique_request": principles[i].critique_request,
                "critique": critiques[i].text,
                "critique_tokens": critiques[i].new_tokens,
                "critique_stop": critiques[i].stop,
                "critique_degenerate": degenerate_reason(critiques[i].text, items[i]["prompt"]),
                "revision_request": principles[i].revision_request,
                "revision": revisions[i].text,
                "revision_tokens": revisions[i].new_tokens,
                "revision_stop": revisions[i].stop,
                "revision_truncated": revisions[i].truncated,
                "revision_degenerate": degenerate_reason(revisions[i].text, items[i]["prompt"]),
            })
            current[i] = revisions[i].text
    return [
        {"id": item["id"], "prompt": item["prompt"], "category": item.get("category"),
         "response": item["response"], "response_degenerate": degenerate_reason(item["response"], item["prompt"]),
         "rounds": history[i], "final_revision": current[i]}
        for i, item in enumerate(items)
    ]


def preference_pairs(records: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """Revision-vs-original pairs in TRL's preference format, and the excluded records with their reason."""
    pairs, excluded = [], []
    for record in records:
        original, revision = record["response"].strip(), record["final_revision"].strip()
        reason = None
        if record["response_degenerate"]:
            reason = f"original_{record['response_degenerate']}"
        elif record["rounds"][-1]["revision_degenerate"]:
            reason = f"revision_{record['rounds'][-1]['revision_degenerate']}"
        elif revision == original:
            reason = "revision_identical_to_original"
        if reason:
            excluded.append({"id": record["id"], "reason": reason})
            continue
        pairs.append({
            "id": record["id"],
            "prompt": dialogue_prompt(record["prompt"]),
            "chosen": " " + revision,
            "rejected": " " + original,
        })
    return pairs, excluded


def degenerate_summary(records: Sequence[dict]) -> dict:
    """Counts of degenerate outputs per round and kind, and the share of unusable final revisions."""
    n = len(records)
    rounds = []
    for round_index in range(len(records[0]["rounds"]) if records else 0):
        entry = {"round": round_index}
        for kind in ("critique", "revision"):
            reasons = [r["rounds"][round_index][f"{kind}_degenerate"] for r in records]
            entry[f"{kind}_degenerate"] = sum(x is not None for x in reasons)
            entry[f"{kind}_reasons"] = {x: reasons.count(x) for x in sorted({x for x in reasons if x})}
        rounds.append(entry)
    final_bad = sum(r["rounds"][-1]["revision_degenerate"] is not None for r in records)
    return {
        "n": n,
        "response_degenerate": sum(r["response_degenerate"] is not None for r in records),
        "rounds": rounds,
        "final_revision_degenerate": final_bad,
        "final_revision_degenerate_share": final_bad / n if n else 0.0,
    }
