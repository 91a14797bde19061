import json

import pytest

from caibase.config import prompt_set_paths
from caibase.prompts import PromptSetError, find_contamination, load_prompt_set, near_duplicate

from conftest import load_config


def write_set(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_shipped_prompt_sets_are_clean_and_sized(repo):
    """Every shipped set, including those no config evaluates yet, against every other."""
    paths = {path.stem: path for path in sorted((repo / "data" / "prompts").glob("*.jsonl"))}
    sets = [load_prompt_set(name, path) for name, path in paths.items()]
    assert find_contamination(sets) == []
    by_name = {s.name: s for s in sets}
    by_name |= {name: by_name[path.stem] for name, path in prompt_set_paths(load_config("config.yaml"), repo).items()}
    assert len(by_name["helpful_sft"].records) >= 12
    assert all(r.get("response") for r in by_name["helpful_sft"].records)
    redteam = by_name["redteam_train"].records
    assert len(redteam) >= 100 and len({r["category"] for r in redteam}) >= 6
    assert len(by_name["jailbreak"].records) >= 24


def test_injected_duplicate_is_caught_with_both_ids(tmp_path):
    train = write_set(tmp_path / "train.jsonl", [
        {"id": "t1", "category": "direct", "split": "train", "prompt": "How can I pick a lock on a front door?"},
        {"id": "t2", "category": "direct", "split": "train", "prompt": "Write a poem about spring rain."},
    ])
    evaluation = write_set(tmp_path / "eval.jsonl", [
        {"id": "e1", "category": "direct", "split": "eval", "prompt": "how can i PICK a lock on a front door"},
        {"id": "e2", "category": "direct", "split": "eval", "prompt": "Explain photosynthesis to a child."},
    ])
    hits = find_contamination([load_prompt_set("train", train), load_prompt_set("eval", evaluation)])
    assert [(h["train_id"], h["eval_id"]) for h in hits] == [("t1", "e1")]


def test_near_duplicates_by_word_trigrams():
    assert near_duplicate("Tell me how to hotwire a car quickly without the keys please",
                          "Tell me how to hotwire a car quickly without the keys")
    assert not near_duplicate("Tell me how to hotwire a car", "Explain how vaccines train the immune system")


@pytest.mark.parametrize("row, message", [
    ({"id": "a", "category": "c", "split": "train"}, "field 'prompt'"),
    ({"id": "a", "category": "c", "split": "test", "prompt": "p"}, "split must be"),
    ({"id": "a", "category": "c", "split": "train", "prompt": ""}, "field 'prompt'"),
])
def test_bad_prompt_rows_name_file_and_field(tmp_path, row, message):
    path = write_set(tmp_path / "bad.jsonl", [row])
    with pytest.raises(PromptSetError, match=message) as err:
        load_prompt_set("bad", path)
    assert "bad.jsonl" in str(err.value)


def test_duplicate_ids_and_invalid_json_are_reported(tmp_path):
    row = {"id": "a", "category": "c", "split": "train", "prompt": "p"}
    with pytest.raises(PromptSetError, match="duplicate id 'a'"):
        load_prompt_set("dup", write_set(tmp_path / "dup.jsonl", [row, {**row, "prompt": "q"}]))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "a"\n')
    with pytest.raises(ValueError, match="broken.jsonl:1: invalid JSON"):
        load_prompt_set("broken", broken)


def test_hh_rlhf_first_turns_from_the_mirror(data_mirror, tmp_path):
    from caibase.prompts import first_human_turn, hh_rlhf_key, hh_rlhf_redteam_records
    from caibase.sources import hh_rlhf_harmless_rows

    rows = hh_rlhf_harmless_rows()
    assert len(rows) == 1992 and {"chosen", "rejected"} <= set(rows[0])
    assert first_human_turn(rows[0]["chosen"]) == "what are some pranks with a pen i can do?"
    first = min(rows, key=hh_rlhf_key)  # rows are taken in this stable order, not file order
    clash = {"id": "e1", "category": "c", "split": "eval", "prompt": first_human_turn(first["chosen"])}
    evaluation = load_prompt_set("jailbreak", write_set(tmp_path / "eval.jsonl", [clash]))
    records, dropped = hh_rlhf_redteam_records(rows, 5, [evaluation])
    assert len(records) == 5 and all(r["split"] == "train" and r["prompt"] for r in records)
    assert len({r["id"] for r in records}) == 5
    assert [d["near_duplicate_of"] for d in dropped] == ["jailbreak/e1"]
