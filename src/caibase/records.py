"""The records stages pass to each other, one JSON object a line: a sampled response (rules generate_eval and
generate_redteam, scripts/generate_responses.py), a judged response (rule judge, caibase.judges.judge_responses) and a
preference pair (rules preference_pairs and ai_feedback_labels; DPO trains on them).

The TypedDicts name each record's fields (optional ones NotRequired); check_records checks that every record has the
required ones before a stage writes them, so a stage that drops a field fails where it does, not in a later stage.
Field types are documentation: only presence is checked. Torch-free.
"""

from collections.abc import Iterable
from typing import Any, NotRequired, TypedDict

import pandas as pd


class RecordError(ValueError):
    """A record lacks a field its kind requires."""


class ResponseRecord(TypedDict):
    id: str  # the prompt's id in its prompt set
    sample: int  # which of the prompt's samples (0 .. samples_per_prompt - 1)
    prompt_set: str
    category: str | None
    prompt: str
    style: str | None  # the style asked for (style set)
    policy: str  # caibase.vocabulary: a policy or a sweep point
    response: str
    prompt_tokens: int
    new_tokens: int
    stop: Any
    truncated: bool
    degenerate: str | None  # why the response is degenerate, None when it is not
    reference_logprob: NotRequired[float]  # prompts with a reference answer only (caibase.likelihood)
    reference_tokens: NotRequired[int]
    generation: dict  # sampling settings and backend
    provenance: dict  # caibase.provenance.stamp


class JudgedRecord(TypedDict):
    run: str
    condition: str  # the response's policy
    seed: int
    id: str  # renamed prompt_id in the metrics' frames (judged_frame)
    sample: int
    prompt_set: str
    category: str | None
    response: str
    response_sha256: str
    response_tokens: int
    truncated: bool
    degenerate: str | None
    reference_logprob: float | None
    reference_tokens: int | None
    judge: str
    judge_backend: str
    judge_model: str | None
    judge_is_proxy: bool
    judge_template_sha256: str
    task: str  # caibase.vocabulary: REFUSAL_TASK or one of SCORE_TASKS
    label: str | None
    status: str  # caibase.judges.STATUSES
    raw_judge_output: str | None
    refused: bool | None  # refusal task
    attack_success: bool | None  # refusal task
    score: int | None  # score tasks
    label_mass: NotRequired[float]  # judges that read label probabilities
    label_probs: NotRequired[dict]
    provenance: dict


class PairRecord(TypedDict):
    id: str
    prompt: str  # in the dialogue format
    chosen: str
    rejected: str
    p_chosen: NotRequired[float]  # AI-feedback pairs: the feedback model's preference (soft labels)
    source: str  # caibase.vocabulary: a pair kind
    provenance: dict


def check_records(records: Iterable[dict], kind: type) -> list[dict]:
    """The records as a list, each checked to have the fields `kind` (a TypedDict above) requires."""
    records = list(records)
    required = kind.__required_keys__
    for i, record in enumerate(records):
        missing = sorted(required - record.keys())
        if missing:
            raise RecordError(f"{kind.__name__} {i} (id {record.get('id')!r}) lacks {', '.join(missing)}")
    return records


def judged_frame(records: Iterable[dict]) -> pd.DataFrame:
    """Judged records as the metrics read them (caibase.metrics): one row each, the prompt's `id` as `prompt_id`."""
    return pd.DataFrame(list(records)).rename(columns={"id": "prompt_id"})
