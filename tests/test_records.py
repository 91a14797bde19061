"""The records stages pass to each other (caibase.records): the reference run's judged records fit JudgedRecord, a
record without a required field stops the stage that writes it, and the metrics' frame names the prompt's id."""

import json

import pytest

from caibase.records import JudgedRecord, PairRecord, RecordError, check_records, judged_frame

from conftest import REPO


def test_the_reference_runs_judged_records_fit_their_type():
    paths = sorted((REPO / "results" / "embedded-cpu").glob("seed*/eval/*/judged.jsonl"))
    records = [json.loads(line) for path in paths for line in path.read_text(encoding="utf-8").splitlines()]
    assert records and check_records(records, JudgedRecord) == records
    assert set().union(*map(set, records)) <= set(JudgedRecord.__annotations__)  # no field the type does not name


def test_a_record_without_a_required_field_is_an_error():
    pair = {"id": "p1", "prompt": "\n\nHuman: hi\n\nAssistant:", "chosen": " hello", "rejected": " no",
            "source": "revision", "provenance": {}}
    assert check_records(iter([pair]), PairRecord) == [pair]  # p_chosen is optional
    with pytest.raises(RecordError, match="PairRecord 0 .*'p1'.* lacks chosen, source"):
        check_records([{k: v for k, v in pair.items() if k not in ("chosen", "source")}], PairRecord)


def test_judged_frame_names_the_prompt_id():
    frame = judged_frame([{"id": "jb-1", "condition": "sft", "seed": 1}])
    assert list(frame.columns) == ["prompt_id", "condition", "seed"]
