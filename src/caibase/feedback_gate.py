"""The feedback-model gate: the AI-feedback condition trains on the feedback model's labels, so it is a result only
when that model tells the better response apart better than chance.

The gate passes when, on every validation set the feedback model was scored on (the paper's HHH evaluation,
HH-RLHF harmless-base pairs: `feedback/validation/summary.json`, or the per-item records behind it), the lower bound
of the Wilson 95% interval of its accuracy lies above chance (0.5). When it does not, the AI-feedback condition
(`dpo_aif`, and the data-scale points `dpo_aif_n<N>` trained on the same labels) is invalid:

- `feedback.gate.on_fail: mark` (the default) runs on and marks it: `valid` and `invalid_reason` in
  `tables/*.csv` and `metrics.json` (which also holds the gate as `feedback_gate`), its rows and paired differences
  set apart in the paper's tables, and the paper says why and reports none of its numbers as a result;
- `fail`: rule validate_feedback_model fails with the reason (set, accuracy, interval) in its error and log.

Validity is published (`gate/dpo_aif/valid`, formula `feedback_gate` of caibase.published) and recomputed from the
per-item validation records by `make verify`. Torch-free.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from caibase.vocabulary import DPO_AIF

CHANCE = 0.5
ON_FAIL = ("mark", "fail")
AIF_CONDITION = DPO_AIF
_GATED = re.compile(rf"{AIF_CONDITION}(_n\d+)?")  # the condition and its sweep points


class FeedbackGateError(RuntimeError):
    """`feedback.gate.on_fail: fail` and the feedback model did not pass its gate."""


@dataclass(frozen=True)
class Gate:
    """The gate's outcome: `valid`, the `reason` when not (empty when valid), and per validation set its accuracy,
    Wilson interval, n and whether it `passed`."""

    valid: bool
    reason: str
    chance: float = CHANCE
    sets: dict[str, dict] = field(default_factory=dict)


def validation_sets(summary: dict) -> dict[str, dict]:
    """The validation sets of a summary ({set: {accuracy, accuracy_ci95_wilson, n, ...}}, as summary.json holds
    them beside other keys)."""
    return {name: result for name, result in summary.items()
            if isinstance(result, dict) and "accuracy_ci95_wilson" in result}


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def feedback_gate(summary: dict, chance: float = CHANCE) -> Gate:
    """Valid iff on every validation set in `summary` the Wilson lower bound of the accuracy is above `chance`."""
    sets = {}
    for name, result in validation_sets(summary).items():
        low, high = (_number(v) for v in result["accuracy_ci95_wilson"])
        sets[name] = {"accuracy": _number(result["accuracy"]), "ci95_low": low, "ci95_high": high,
                      "n": int(result["n"]), "passed": not math.isnan(low) and low > chance}
    if not sets:
        raise ValueError("the feedback-model gate has no validation set to read (feedback.validate: false?)")
    failed = [(name, s) for name, s in sets.items() if not s["passed"]]
    reason = "; ".join(
        f"the feedback model's accuracy on {name} is {s['accuracy']:.2f} (n={s['n']}) and its Wilson 95% interval "
        f"[{s['ci95_low']:.2f}, {s['ci95_high']:.2f}] does not lie above chance ({chance:g})" for name, s in failed)
    return Gate(valid=not failed, reason=reason, chance=chance, sets=sets)


def gated(condition: str) -> bool:
    """Whether a condition or policy trains on AI-feedback labels (dpo_aif, dpo_aif_n<N>)."""
    return bool(_GATED.fullmatch(str(condition)))


def condition_validity(condition: str, gate: Gate | None) -> tuple[bool, str]:
    """(valid, invalid_reason) of one condition: only AI-feedback conditions depend on the gate."""
    if gate is None or gate.valid or not gated(condition):
        return True, ""
    return False, f"{condition}: {gate.reason}"


def mark_conditions(frame, gate: Gate | None, columns=("condition",), judge_gates: dict | None = None):
    """The table with `valid` and `invalid_reason` columns: a row is invalid when a condition in any of `columns`
    (e.g. treatment and control of a paired difference) is, or when its `metric` comes from a judge that failed the
    judge gate (`judge_gates`, caibase.judge_gate)."""
    from caibase.judge_gate import metric_validity

    valid, reasons = [], []
    present = [column for column in columns if column in frame]  # an empty table may lack them
    metrics = frame["metric"] if "metric" in frame else [None] * len(frame)
    for metric, *values in zip(metrics, *(frame[column] for column in present)):
        marks = [condition_validity(condition, gate) for condition in values]
        if metric is not None:
            marks.append(metric_validity(metric, judge_gates))
        valid.append(all(ok for ok, _ in marks))
        reasons.append("; ".join(dict.fromkeys(reason for ok, reason in marks if not ok)))
    return frame.assign(valid=valid, invalid_reason=reasons)


def enforce(gate: Gate, on_fail: str) -> None:
    """`feedback.gate.on_fail`: `fail` raises FeedbackGateError when the gate did not pass; `mark` never raises."""
    if on_fail not in ON_FAIL:
        raise ValueError(f"feedback.gate.on_fail must be one of {ON_FAIL}, not {on_fail!r}")
    if on_fail == "fail" and not gate.valid:
        raise FeedbackGateError(
            f"feedback.gate.on_fail: fail, and the AI-feedback condition {AIF_CONDITION} is invalid: {gate.reason}. "
            "Use a stronger feedback model, or set feedback.gate.on_fail: mark to run on with "
            f"{AIF_CONDITION} marked invalid in the tables and the paper.")


def as_record(gate: Gate | None) -> dict | None:
    """The gate as metrics.json and summary.json store it."""
    if gate is None:
        return None
    return {"valid": gate.valid, "reason": gate.reason, "chance": gate.chance, "sets": gate.sets,
            "gated_conditions": f"{AIF_CONDITION}, {AIF_CONDITION}_n<N>"}
