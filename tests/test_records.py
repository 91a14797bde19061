"""The records stages write (caibase.records): every record kind of the reference run fits its type, naming every
field it has; a record without a required field stops the stage that writes it; the metrics' frame names the
prompt's id."""

import json

import pytest

from caibase.records import (
    CanaryRecord,
    ExcludedPairRecord,
    FeedbackLabelRecord,
    FeedbackValidationRecord,
    JudgedRecord,
    JudgeValidationRecord,
    PairRecord,
    RecordError,
    ResponseRecord,
    RevisionRecord,
    RoundRecord,
    check_records,
    judged_frame,
)

from conftest import REPO

# Every record kind a run writes, by its path under results/<run>/.
KINDS = {
    "seed*/eval/*/judged.jsonl": JudgedRecord, "seed*/eval/*/responses.jsonl": ResponseRecord,
    "seed*/slcai/responses.jsonl": ResponseRecord, "seed*/slcai/revisions.jsonl": RevisionRecord,
    "seed*/pairs/revision.jsonl": PairRecord, "seed*/pairs/ai-feedback.jsonl": PairRecord,
    "seed*/pairs/revision.excluded.jsonl": ExcludedPairRecord,
    "seed*/pairs/ai-feedback.labels.jsonl": FeedbackLabelRecord,
    "feedback/validation/*.jsonl": FeedbackValidationRecord, "judges/validation.jsonl": JudgeValidationRecord,
    "judges/score_canary.jsonl": CanaryRecord,
}
# The kinds git keeps of the reference run (the rest are DVC outputs; tests/test_pipeline.py checks them all on the
# smoke run).
IN_GIT = ["seed*/eval/*/judged.jsonl", "feedback/validation/*.jsonl", "judges/validation.jsonl",
          "judges/score_canary.jsonl"]


def check_run_records(run_dir, pattern) -> int:
    """Check a run's records of one kind against their type, every field named by it; the number of records."""
    kind = KINDS[pattern]
    paths = sorted(run_dir.glob(pattern))
    records = [json.loads(line) for path in paths for line in path.read_text(encoding="utf-8").splitlines()]
    assert check_records(records, kind) == records
    assert set().union(set(), *map(set, records)) <= set(kind.__annotations__), pattern  # no unnamed field
    if kind is RevisionRecord:
        rounds = [r for record in records for r in record["rounds"]]
        assert set().union(set(), *map(set, rounds)) <= set(RoundRecord.__annotations__)
    return len(records)


@pytest.mark.parametrize("pattern", IN_GIT)
def test_the_reference_runs_records_fit_their_type(pattern):
    assert check_run_records(REPO / "results" / "embedded-cpu", pattern) > 0


def test_a_record_without_a_required_field_is_an_error():
    pair = {"id": "p1", "prompt": "\n\nHuman: hi\n\nAssistant:", "chosen": " hello", "rejected": " no",
            "source": "revision", "provenance": {}}
    assert check_records(iter([pair]), PairRecord) == [pair]  # p_chosen is optional
    with pytest.raises(RecordError, match="PairRecord 0 .*'p1'.* lacks chosen, source"):
        check_records([{k: v for k, v in pair.items() if k not in ("chosen", "source")}], PairRecord)


def test_a_revision_round_without_a_required_field_is_an_error():
    round_ = {key: "" for key in RoundRecord.__required_keys__ if key != "critique"}
    record = {key: "" for key in RevisionRecord.__required_keys__} | {"rounds": [round_]}
    with pytest.raises(RecordError, match="RoundRecord 0 .* lacks critique"):
        check_records([record], RevisionRecord)


def test_judged_frame_names_the_prompt_id():
    frame = judged_frame([{"id": "jb-1", "condition": "sft", "seed": 1}])
    assert list(frame.columns) == ["prompt_id", "condition", "seed"]
