"""HH-RLHF rows are selected by a stable key, so a file holding a subset of the rows (the mirror's 1,992) selects the
same rows as the full file (upstream's 2,312) wherever both hold them; and the sources a job read are recorded."""

import random

import pytest

from caibase.feedback import hh_rlhf_labeled_pairs
from caibase.prompts import PromptSet, hh_rlhf_key, hh_rlhf_redteam_records


def synthetic_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        prompt = f"question {i} about {rng.choice(['locks', 'cars', 'pranks', 'cooking'])} {rng.random():.6f}"
        rows.append({"chosen": f"\n\nHuman: {prompt}\n\nAssistant: I can't help with that ({i}).",
                     "rejected": f"\n\nHuman: {prompt}\n\nAssistant: Sure, here is how ({i})."})
    return rows


def selections(rows: list[dict], limit: int) -> tuple[list[str], list[str]]:
    pairs = [p["id"] for p in hh_rlhf_labeled_pairs(rows, limit)]
    prompts = [r["id"] for r in hh_rlhf_redteam_records(rows, limit, [PromptSet("none", None, ())])[0]]
    return pairs, prompts


def test_selection_depends_on_the_rows_held_not_on_the_file():
    full = synthetic_rows(400)
    rng = random.Random(1)
    subset = [row for row in full if rng.random() < 0.86]  # like the mirror's 1,992 of 2,312
    rng.shuffle(subset)  # and in another order
    limit = 30
    full_pairs, full_prompts = selections(full, limit)
    sub_pairs, sub_prompts = selections(subset, limit)
    held = {hh_rlhf_key(row)[1][:16] for row in subset}
    for from_full, from_subset in ((full_pairs, sub_pairs), (full_prompts, sub_prompts)):
        assert len(from_full) == len(from_subset) == limit
        common = [i for i in from_full if i.rsplit("-", 1)[1] in held]
        assert common and from_subset[:len(common)] == common  # every row both hold is selected by both, same order
        assert set(from_full) - set(common) == {i for i in from_full if i.rsplit("-", 1)[1] not in held}
    assert selections(list(reversed(subset)), limit) == (sub_pairs, sub_prompts)  # file order does not matter


def test_the_mirror_subset_selects_as_the_superset_restricted_to_it(data_mirror):
    """With the mirror: its rows plus rows it lacks (standing in for upstream's other 320) select, among the
    mirror's rows, exactly what the mirror alone selects first; the ids are the rows' own, not line numbers."""
    from caibase.sources import fetched_sources, hh_rlhf_harmless_rows

    mirror_rows = hh_rlhf_harmless_rows()
    assert len(mirror_rows) == 1992
    upstream_like = mirror_rows + synthetic_rows(320, seed=7)
    random.Random(3).shuffle(upstream_like)
    limit = 50
    mine = {hh_rlhf_key(row)[1][:16] for row in mirror_rows}
    for from_upstream, from_mirror in zip(selections(upstream_like, limit), selections(mirror_rows, limit),
                                          strict=True):
        restricted = [i for i in from_upstream if i.rsplit("-", 1)[1] in mine]
        assert restricted == from_mirror[:len(restricted)] and len(restricted) > limit // 2
    record = fetched_sources()["hh-rlhf-harmless-base/test-subset.jsonl"]
    assert record["sha256"] == "7bd029b9cb1903bd08c20c4cdf283911f67ca94aef5bcd7b81601acbcbcfe664"
    assert record["rows"] == 1992 and record["read_from"].startswith("mirror")


def test_the_full_file_is_preferred_when_the_mirror_holds_it(tmp_path, monkeypatch):
    from caibase import sources

    monkeypatch.setenv("CAI_DATA_MIRROR", str(tmp_path))
    (tmp_path / "hh-rlhf-harmless-base").mkdir()
    (tmp_path / sources.HH_RLHF_SUBSET).write_text("")
    assert sources.hh_rlhf_harmless_source() == sources.HH_RLHF_SUBSET
    (tmp_path / sources.HH_RLHF_FULL).write_bytes(b"")
    assert sources.hh_rlhf_harmless_source() == sources.HH_RLHF_FULL
    with pytest.raises(sources.SourceError, match="does not match the pinned"):
        sources.hh_rlhf_harmless_rows()
