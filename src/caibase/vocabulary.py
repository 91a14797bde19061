"""The pipeline's vocabulary, in one place: the policies (conditions) it trains and evaluates, the kinds of preference
pairs, the prompt sets and the judge task of each, and the keys of the published numbers (published.json) with their
builders and parser. The metrics themselves are caibase.metrics.METRICS.

Import-light and torch-free: workflow/rules/common.smk imports it when Snakemake parses the workflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ---------------------------------------------------------------------------------------------------------------
# Policies (the evaluation's conditions)

BASE = "base"  # the base model as it is
SFT = "sft"  # helpful-only SFT (every CAI policy starts from it)
SLCAI = "slcai"  # SL-CAI: SFT on the critique-revision outputs
DPO = "dpo"  # DPO on revision pairs, on top of SFT
DPO_AIF = "dpo_aif"  # DPO on AI-feedback pairs, on top of SFT
INSTRUCT_REF = "instruct_ref"  # the instruct reference (evaluation.instruct_reference), reported beside
POLICIES = (BASE, INSTRUCT_REF, SFT, SLCAI, DPO, DPO_AIF)  # in the order of the paper's tables
REFERENCE_POLICIES = (INSTRUCT_REF,)  # reported beside the CAI conditions, not compared with them

# ---------------------------------------------------------------------------------------------------------------
# Preference pairs and the DPO policies trained on them

REVISION = "revision"  # (original, revision) pairs of the critique-revision loop
AI_FEEDBACK = "ai-feedback"  # two samples ranked by the feedback model
PAIR_KINDS = (REVISION, AI_FEEDBACK)
DPO_POLICIES = {DPO: REVISION, DPO_AIF: AI_FEEDBACK}  # DPO policy -> the pairs it trains on
POLICY_OF_PAIRS = {pairs: policy for policy, pairs in DPO_POLICIES.items()}
# A data-scale sweep point is a DPO policy on a subsample of n pairs: `<policy>_n<N>`, e.g. dpo_n8, dpo_aif_n100.
_SWEEP_POINT = re.compile(rf"({'|'.join(DPO_POLICIES)})_n(\d+)")

# Snakemake wildcard constraints (common.smk): every policy name, sweep points included, and every pair kind.
POLICY_PATTERN = "|".join((*POLICIES, _SWEEP_POINT.pattern))
PAIRS_PATTERN = "|".join(PAIR_KINDS)


def sweep_policy(pairs: str, n_pairs: int) -> str:
    """The policy name of a sweep point: DPO on `n_pairs` pairs of kind `pairs`."""
    return f"{POLICY_OF_PAIRS[pairs]}_n{n_pairs}"


def parse_sweep_policy(policy: str) -> tuple[str, int] | None:
    """(pairs, n) for a sweep point's policy name, None for any other policy."""
    match = _SWEEP_POINT.fullmatch(policy)
    return (DPO_POLICIES[match.group(1)], int(match.group(2))) if match else None


def pairs_of(policy: str) -> str | None:
    """The pairs a policy's DPO trains on (a DPO policy or a sweep point), None for a policy without DPO."""
    point = parse_sweep_policy(policy)
    return point[0] if point else DPO_POLICIES.get(policy)


# ---------------------------------------------------------------------------------------------------------------
# Prompt sets and judge tasks

REFUSAL_TASK = "refusal"  # refusal or compliance: the safety rates (ASR, over-refusal)
SCORE_TASKS = ("helpfulness", "style")  # rated 1-5 by the score judge
SET_TASKS = {"jailbreak": REFUSAL_TASK, "harmful_direct": REFUSAL_TASK, "benign": REFUSAL_TASK,
             "helpful": "helpfulness", "style": "style"}  # evaluation prompt set -> the judge task that labels it
SCORED_SETS = tuple(name for name, task in SET_TASKS.items() if task in SCORE_TASKS)

# ---------------------------------------------------------------------------------------------------------------
# Published keys: "<kind>/<field>/.../<statistic>", each kind with its builder below. Builders given no statistic
# return the key's prefix (what the tables look a statistic up under).

SUMMARY, PAIRED, FEEDBACK, DPO_HISTORY, SCALE, JUDGES, GATE, COST = (
    "summary", "paired", "feedback", "dpo", "scale", "judges", "gate", "cost")
JUDGE_GATE = "gate/judge"  # the judge gate's keys; other `gate/` keys are the feedback-model gate's


def _key(*parts) -> str:
    return "/".join(str(part) for part in parts if part is not None)


def summary_key(condition: str, metric: str, statistic: str | None = None) -> str:
    return _key(SUMMARY, condition, metric, statistic)


def paired_key(treatment: str, control: str, metric: str, statistic: str | None = None) -> str:
    return _key(PAIRED, treatment, control, metric, statistic)


def feedback_key(dataset: str, statistic: str | None = None) -> str:
    return _key(FEEDBACK, dataset, statistic)


def feedback_gate_key(condition: str = DPO_AIF) -> str:
    return _key(GATE, condition, "valid")


def dpo_key(pairs: str, column: str) -> str:
    """The final logged value of a DPO training-log column (which may hold '/', e.g. rewards/margins)."""
    return _key(DPO_HISTORY, pairs, "final", column)


def scale_key(pairs: str, point: str, metric: str, statistic: str | None = None) -> str:
    return _key(SCALE, pairs, point, metric, statistic)


def judges_key(judge: str, dataset: str, statistic: str | None = None) -> str:
    """A judge's agreement with human labels (the judge's name may hold '/')."""
    return _key(JUDGES, judge, dataset, statistic)


def judge_gate_key(task: str, reference_set: str | None = None, statistic: str = "valid") -> str:
    """The judge gate of a task (`valid`), or one statistic of one of its reference sets."""
    return _key(JUDGE_GATE, task, reference_set, statistic)


def cost_key(stage: str, statistic: str | None = None) -> str:
    return _key(COST, stage, statistic)


@dataclass(frozen=True)
class Key:
    """A published key taken apart: its `kind` and the fields that kind has (the others None)."""

    kind: str
    statistic: str | None = None
    condition: str | None = None  # summary; gate (the feedback-model gate's condition)
    treatment: str | None = None  # paired
    control: str | None = None  # paired
    metric: str | None = None  # summary, paired, scale
    dataset: str | None = None  # feedback, judges
    pairs: str | None = None  # dpo, scale
    point: str | None = None  # scale
    column: str | None = None  # dpo
    judge: str | None = None  # judges
    task: str | None = None  # gate/judge
    reference_set: str | None = None  # gate/judge
    stage: str | None = None  # cost

    @property
    def conditions(self) -> tuple[str, ...]:
        """The conditions a summary or paired number is of (none for other kinds)."""
        if self.kind not in (SUMMARY, PAIRED):
            return ()
        return tuple(c for c in (self.condition, self.treatment, self.control) if c is not None)


def parse_key(key: str) -> Key:
    """The fields of a published key (the inverse of the builders above); ValueError for a key of no known kind."""
    kind, *rest = key.split("/")
    fields = None
    if kind == SUMMARY and len(rest) == 3:
        fields = dict(zip(("condition", "metric", "statistic"), rest))
    elif kind == PAIRED and len(rest) == 4:
        fields = dict(zip(("treatment", "control", "metric", "statistic"), rest))
    elif kind == FEEDBACK and len(rest) == 2:
        fields = dict(zip(("dataset", "statistic"), rest))
    elif kind == DPO_HISTORY and len(rest) >= 3 and rest[1] == "final":
        fields = {"pairs": rest[0], "column": "/".join(rest[2:])}
    elif kind == SCALE and len(rest) == 4:
        fields = dict(zip(("pairs", "point", "metric", "statistic"), rest))
    elif kind == JUDGES and len(rest) >= 3:
        fields = {"judge": "/".join(rest[:-2]), "dataset": rest[-2], "statistic": rest[-1]}
    elif kind == GATE and rest[:1] == ["judge"] and len(rest) in (3, 4):
        kind, fields = JUDGE_GATE, {"task": rest[1], "reference_set": rest[2] if len(rest) == 4 else None,
                                    "statistic": rest[-1]}
    elif kind == GATE and len(rest) == 2:
        fields = dict(zip(("condition", "statistic"), rest))
    elif kind == COST and len(rest) == 2:
        fields = dict(zip(("stage", "statistic"), rest))
    if fields is None:
        raise ValueError(f"{key!r}: not a published key")
    return Key(kind, **fields)
