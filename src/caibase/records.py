"""The records stages write, one JSON object a line: a sampled response (rules generate_eval and generate_redteam,
scripts/generate_responses.py), a judged response (rule judge, caibase.judges.judge_responses), a critique-revision
record with its rounds (rule critique_revise), a preference pair (rules preference_pairs and ai_feedback_labels; DPO
trains on them), an excluded revision pair, an AI-feedback label (rule ai_feedback_labels), a feedback-model
validation item (rule validate_feedback_model), a judge validation item and a score-canary item (rule
validate_judges).

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
    score: float | None  # score tasks: 1-5 (an int, except the study's helpfulness reading: a mean of criteria)
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


class RoundRecord(TypedDict):
    round: int
    principle_id: str
    critique_request: str
    critique: str
    critique_tokens: int
    critique_stop: Any
    critique_degenerate: str | None
    revision_request: str
    revision: str
    revision_tokens: int
    revision_stop: Any
    revision_truncated: bool
    revision_degenerate: str | None


class RevisionRecord(TypedDict):
    id: str  # the red-team prompt's id
    category: str | None
    prompt: str
    response: str  # the SFT policy's first response
    response_degenerate: str | None
    rounds: list[RoundRecord]  # critique_revise checks each round too
    final_revision: str
    seed: int
    constitution: str
    generation: dict
    provenance: dict


class ExcludedPairRecord(TypedDict):
    id: str
    reason: str  # why the revision pair was left out (caibase.critique.preference_pairs)


class FeedbackLabelRecord(TypedDict):
    id: str
    prompt: str
    response_1: str
    response_2: str
    principle_id: str
    chain_of_thought: bool
    p_first_order_ab: float  # P(response_1 is better) with response_1 shown first
    p_first_order_ba: float  # the same with the order swapped
    p_first: float  # their mean: the soft label
    position_consistent: bool
    logprobs_order_ab: list[float]
    logprobs_order_ba: list[float]
    position_rule: str  # feedback.position_inconsistent
    kept: bool
    reasoning_order_ab: NotRequired[str]  # chain of thought only
    reasoning_order_ba: NotRequired[str]
    p_first_order_ab_raw: NotRequired[float]
    p_first_order_ba_raw: NotRequired[float]
    provenance: dict


class FeedbackValidationRecord(TypedDict):
    dataset: str  # hhh-<sample> or hh-rlhf-harmless-base
    id: str
    p_correct_order_ab: float
    p_correct_order_ba: float
    p_correct: float
    correct: bool
    confidence: float
    position_consistent: bool


class JudgeValidationRecord(TypedDict):
    dataset: str  # the labels file's name, or the HH-RLHF pairs
    id: str
    response: str
    human_label: str  # the reference label
    judge: str
    judge_backend: str
    judge_model: str | None
    judge_is_proxy: bool
    judge_template_sha256: str
    task: str
    label: str | None
    status: str
    raw_judge_output: str | None
    refused: bool | None
    attack_success: bool | None
    score: float | None
    label_mass: NotRequired[float]  # judges that read label probabilities
    label_probs: NotRequired[dict]
    # carried from the item: HH-RLHF pairs (kind, pair_id, side, source) and labels files (where the response came
    # from, and the label passes: data/judge_labels/INSTRUCTIONS.md)
    kind: NotRequired[str]
    pair_id: NotRequired[str]
    side: NotRequired[str]
    source: NotRequired[str]
    condition: NotRequired[str]
    seed: NotRequired[int]
    prompt_set: NotRequired[str]
    label_pass1: NotRequired[str]
    label_pass2: NotRequired[str]
    adjudicated: NotRequired[bool]
    note_pass1: NotRequired[str]
    note_pass2: NotRequired[str]
    note_adjudication: NotRequired[str]


class CanaryRecord(TypedDict):
    id: str
    task: str  # one of SCORE_TASKS
    why: str  # what makes the better reply better
    judge: str
    judge_backend: str
    judge_model: str | None
    judge_is_proxy: bool
    judge_template_sha256: str
    better_score: float | None
    better_status: str
    worse_score: float | None
    worse_status: str
    status: str  # ok, or why the pair cannot count (caibase.judge_validation.score_canary)


def check_records(records: Iterable[dict], kind: type) -> list[dict]:
    """The records as a list, each checked to have the fields `kind` (a TypedDict above) requires."""
    records = list(records)
    required = kind.__required_keys__
    for i, record in enumerate(records):
        missing = sorted(required - record.keys())
        if missing:
            raise RecordError(f"{kind.__name__} {i} (id {record.get('id')!r}) lacks {', '.join(missing)}")
        if kind is RevisionRecord:
            check_records(record["rounds"], RoundRecord)
    return records


def judged_frame(records: Iterable[dict]) -> pd.DataFrame:
    """Judged records as the metrics read them (caibase.metrics): one row each, the prompt's `id` as `prompt_id`."""
    return pd.DataFrame(list(records)).rename(columns={"id": "prompt_id"})
