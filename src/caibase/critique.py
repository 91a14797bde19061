"""SL-CAI: critique and revise responses to red-team prompts, in the paper's base-model transcript format.

Each round samples one critique/revision principle per prompt (seeded by run seed, prompt id and round), asks for a
critique, then for a revision; the revision becomes the response the next round critiques. Every intermediate
critique and revision is kept.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from caibase.constitution import Constitution, CritiquePrinciple
from caibase.generation import GenerationSettings, generate, sample_seed

FEWSHOT_SEPARATOR = "\n\n-----\n\n"
TURN_STOPS = ("\n\nHuman:", "\nHuman:", "\n\nAssistant:", "\n\n-----")
RESPONSE_STOPS = TURN_STOPS + ("\n\nCritiqueRequest:",)
CRITIQUE_STOPS = TURN_STOPS + ("\n\nRevisionRequest:", "\n\nRevision:", "\n\nCritiqueRequest:")
REVISION_STOPS = TURN_STOPS + ("\n\nCritiqueRequest:", "\n\nRevisionRequest:", "\n\nCritique:")


def dialogue_prompt(human: str) -> str:
    """The base-model conversation format used for SFT, generation and DPO alike."""
    return f"\n\nHuman: {human.strip()}\n\nAssistant:"


def fewshot_prefix(constitution: Constitution, n_examples: int) -> str:
    examples = constitution.critique_fewshot[:n_examples]
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
) -> list[dict]:
    """`items` hold `id`, `prompt` and `response`; returns one record per item with every round kept."""
    prefix = fewshot_prefix(constitution, fewshot_examples)
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
            [critique_prompt(prefix, item["prompt"], current[i], principles[i]) for i, item in enumerate(items)],
            critique_settings,
            [sample_seed(seed, f"{item['id']}:critique:{round_index}") for item in items],
        )
        revisions = generate(
            model, tokenizer,
            [revision_prompt(prefix, item["prompt"], current[i], principles[i], critiques[i].text)
             for i, item in enumerate(items)],
            revision_settings,
            [sample_seed(seed, f"{item['id']}:revision:{round_index}") for item in items],
        )
        for i in range(len(items)):
            history[i].append({
                "round": round_index,
                "principle_id": principles[i].id,
                "critique_request": principles[i].critique_request,
                "critique": critiques[i].text,
                "critique_tokens": critiques[i].new_tokens,
                "critique_stop": critiques[i].stop,
                "revision_request": principles[i].revision_request,
                "revision": revisions[i].text,
                "revision_tokens": revisions[i].new_tokens,
                "revision_stop": revisions[i].stop,
                "revision_truncated": revisions[i].truncated,
            })
            current[i] = revisions[i].text
    return [
        {"id": item["id"], "prompt": item["prompt"], "category": item.get("category"),
         "response": item["response"], "rounds": history[i], "final_revision": current[i]}
        for i, item in enumerate(items)
    ]


def preference_pairs(records: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """Revision-vs-original pairs in TRL's preference format, and the excluded records with their reason."""
    pairs, excluded = [], []
    for record in records:
        original, revision = record["response"].strip(), record["final_revision"].strip()
        reason = None
        if not revision:
            reason = "empty_revision"
        elif not original:
            reason = "empty_original"
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
