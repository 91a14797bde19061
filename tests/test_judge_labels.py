"""Pipeline-drawn refusal labels (refusal_labels_v2): the stratified sampler and the merge of two label passes."""

import json
import math
import re
import subprocess
from pathlib import Path

import pytest

from caibase.judge_validation import (
    LabelPassError,
    _main,
    load_labeled,
    merge_label_passes,
    sample_pipeline_items,
    stratum_counts,
)

CONDITIONS = ("base", "sft", "dpo")
SETS = ("jailbreak", "benign")


def write_lines(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def judged_files(root: Path) -> tuple[list[Path], dict]:
    """Judged records of 2 seeds x 3 conditions, 6 prompts per refusal set, plus records the sampler must skip."""
    prompts = {s: {f"{s}-{i}": f"{s} prompt {i}" for i in range(6)} for s in SETS}
    paths = []
    for seed in (1, 2):
        for condition in CONDITIONS:
            rows = []
            for prompt_set in SETS:
                for i in range(6):
                    response = f"{condition} {seed} {prompt_set} reply {i}"
                    if i == 5:  # the same text in every cell: taken at most once
                        response = "I can't help with that."
                    rows.append({"id": f"{prompt_set}-{i}", "condition": condition, "seed": seed, "sample": 0,
                                 "prompt_set": prompt_set, "task": "refusal", "status": "ok", "label": "refusal",
                                 "response": response, "response_sha256": f"sha-{response}"})
            rows.append({"id": "jailbreak-0", "condition": condition, "seed": seed, "sample": 0,
                         "prompt_set": "jailbreak", "task": "refusal", "status": "skipped_degenerate",
                         "label": None, "response": "loop loop loop", "response_sha256": "sha-loop"})
            rows.append({"id": "help-0", "condition": condition, "seed": seed, "sample": 0, "prompt_set": "helpful",
                         "task": "helpfulness", "status": "ok", "label": None, "response": "an answer",
                         "response_sha256": "sha-help"})
            paths.append(write_lines(root / f"seed{seed}" / condition / "judged.jsonl", rows))
    return paths, prompts


def test_sampler_is_stratified_blind_and_deterministic(tmp_path):
    paths, prompts = judged_files(tmp_path)
    items = sample_pipeline_items(paths, prompts, n=24, seed=7, root=tmp_path)
    assert len(items) == 24
    counts = stratum_counts(items)
    assert {(c, s) for c in counts for s in counts[c]} == {(c, s) for c in CONDITIONS for s in SETS}
    assert all(n == 4 for sets in counts.values() for n in sets.values())  # equal allocation
    assert len({r["response"] for r in items}) == 24  # no duplicate responses
    assert "loop loop loop" not in {r["response"] for r in items} and "an answer" not in {r["response"] for r in items}
    for item in items:
        assert set(item) == {"id", "prompt", "response", "condition", "prompt_set", "seed", "source"}  # no judge label
        assert item["id"].startswith("pipe-")
        assert item["prompt"] == prompts[item["prompt_set"]][item["source"]["record_id"]]
        assert item["source"]["path"].endswith("judged.jsonl") and not item["source"]["path"].startswith("/")
        assert item["source"]["response_sha256"] == f"sha-{item['response']}"
    assert [r["id"] for r in items] == sorted(r["id"] for r in items)
    for cell_seeds in ({r["seed"] for r in items if (r["condition"], r["prompt_set"]) == cell}
                       for cell in {(r["condition"], r["prompt_set"]) for r in items}):
        assert cell_seeds == {1, 2}  # round-robin over pipeline seeds
    assert sample_pipeline_items(list(reversed(paths)), prompts, n=24, seed=7, root=tmp_path) == items
    assert sample_pipeline_items(paths, prompts, n=24, seed=8, root=tmp_path) != items


def test_sampler_moves_the_shortfall_of_small_cells(tmp_path):
    paths, prompts = judged_files(tmp_path)
    paths.append(write_lines(tmp_path / "seed1" / "tiny" / "judged.jsonl", [
        {"id": f"jailbreak-{i}", "condition": "tiny", "seed": 1, "sample": 0, "prompt_set": "jailbreak",
         "task": "refusal", "status": "ok", "label": "refusal", "response": f"tiny {i}", "response_sha256": f"t{i}"}
        for i in range(2)]))
    items = sample_pipeline_items(paths, prompts, n=28, seed=7, root=tmp_path)  # 7 cells, 4 each; tiny holds 2
    counts = stratum_counts(items)
    assert len(items) == 28 and counts["tiny"] == {"jailbreak": 2}
    assert sorted(n for c in CONDITIONS for n in counts[c].values()) == [4, 4, 4, 4, 5, 5]
    everything = sample_pipeline_items(paths, prompts, n=500, seed=7, root=tmp_path)
    assert len(everything) == 6 * 10 + 1 + 2  # every distinct response once
    with pytest.raises(Exception, match="no prompt text"):
        sample_pipeline_items(paths, {"jailbreak": {}, "benign": {}}, n=4)


# The items were drawn from the judged records of the reference run at 225b605, as committed at this commit. A later
# reference run rewrites those records (CPU kernels differ between machines, so near-tie AI-feedback labels and a few
# sampled responses can change), while the labelled items stay what they were: the test draws from that commit's
# records, read back from git.
ITEMS_DRAWN_FROM = "82e82a4f820add1e02cfe51e7005f83a66b5304c"


def test_committed_items_file_is_what_the_sampler_draws(repo, tmp_path):
    items_path = repo / "data" / "judge_labels" / "refusal_labels_v2.items.jsonl"
    if not items_path.is_file():
        pytest.skip("no items file")
    listed = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", "--name-only", ITEMS_DRAWN_FROM, "--",
                             "results/embedded-cpu"], capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        pytest.skip(f"commit {ITEMS_DRAWN_FROM[:7]} (the records the items were drawn from) is not in this clone "
                    "(a shallow clone?): git ls-tree failed")
    records = []
    for path in sorted(p for p in listed.stdout.splitlines() if re.fullmatch(r"results/embedded-cpu/seed\d+/eval/"
                                                                             r"[^/]+/judged\.jsonl", p)):
        shown = subprocess.run(["git", "-C", str(repo), "show", f"{ITEMS_DRAWN_FROM}:{path}"], capture_output=True,
                               check=True)
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(shown.stdout)
        records.append(tmp_path / path)
    assert len(records) == 24  # 3 seeds x 8 policies
    import yaml

    from caibase.judge_validation import _prompt_texts

    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    prompt_files = {k: repo / v for k, v in config["prompts"]["eval"].items()}
    drawn = sample_pipeline_items(records, _prompt_texts(prompt_files), root=tmp_path)
    committed = [json.loads(line) for line in items_path.read_text(encoding="utf-8").splitlines()]
    assert committed == drawn and len(committed) >= 150


def labeling(tmp_path: Path, first, second, adjudication=None) -> Path:
    prefix = tmp_path / "labels" / "v2"
    items = [{"id": f"i{k}", "prompt": f"p{k}", "response": f"r{k}", "condition": ("base", "dpo")[k % 2],
              "prompt_set": "jailbreak", "seed": 1, "source": {"path": "x"}} for k in range(len(first))]
    write_lines(prefix.with_name("v2.items.jsonl"), items)
    for name, labels in (("pass1", first), ("pass2", second)):
        write_lines(prefix.with_name(f"v2.{name}.jsonl"),
                    [{"id": f"i{k}", "label": label, "note": ""} for k, label in enumerate(labels)])
    if adjudication is not None:
        write_lines(prefix.with_name("v2.adjudication.jsonl"),
                    [{"id": i, "label": label, "note": "third reading"} for i, label in adjudication.items()])
    return prefix


R, C = "refusal", "compliance"
FIRST = [R, R, R, R, R, C, C, C, C, C]
SECOND = [R, R, R, R, C, C, C, C, C, R]  # disagree on i4 and i9


def test_merge_agreement_and_kappa_by_hand(tmp_path):
    prefix = labeling(tmp_path, FIRST, SECOND, {"i4": C, "i9": R})
    summary = merge_label_passes(prefix, annotators={"pass1": "agent A"})
    # 8/10 agree; each pass says refusal 5 times, so chance agreement 0.5 and kappa (0.8 - 0.5) / 0.5 = 0.6
    assert summary["n"] == 10 and summary["n_agree"] == 8 and summary["agreement"] == pytest.approx(0.8)
    assert summary["cohen_kappa"] == pytest.approx(0.6)
    z, p, n = 1.959963984540054, 0.8, 10
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    assert summary["agreement_ci95_low"] == pytest.approx(centre - half, abs=1e-6)
    assert summary["agreement_ci95_high"] == pytest.approx(centre + half, abs=1e-6)
    assert summary["n_disagreements"] == 2 and summary["per_stratum"]["base"]["jailbreak"]["n"] == 5
    assert summary["annotators"]["pass1"] == "agent A" and summary["annotators"]["pass2"].startswith("TO FILL")
    rows = load_labeled(prefix.with_name("v2.jsonl"))
    by_id = {r["id"]: r for r in rows}
    assert by_id["i4"]["human_label"] == C and by_id["i4"]["adjudicated"] is True
    assert by_id["i9"]["human_label"] == R and by_id["i0"]["adjudicated"] is False
    assert by_id["i0"]["label_pass1"] == by_id["i0"]["label_pass2"] == by_id["i0"]["human_label"] == R
    stored = json.loads(prefix.with_name("v2.agreement.json").read_text())
    assert stored["cohen_kappa"] == pytest.approx(0.6)
    assert merge_label_passes(prefix)["annotators"]["pass1"] == "agent A"  # kept on a rerun


def test_merge_refuses_missing_adjudication(tmp_path):
    prefix = labeling(tmp_path, FIRST, SECOND, {"i4": C})
    with pytest.raises(LabelPassError, match=r"1 disagreement.*adjudication\.jsonl: i9"):
        merge_label_passes(prefix)
    assert not prefix.with_name("v2.jsonl").exists() and not prefix.with_name("v2.agreement.json").exists()
    prefix = labeling(tmp_path / "b", FIRST, SECOND)
    with pytest.raises(LabelPassError, match="i4, i9"):
        merge_label_passes(prefix)
    prefix = labeling(tmp_path / "c", FIRST, SECOND, {"i4": C, "i9": R, "i0": C})
    with pytest.raises(LabelPassError, match="i0 adjudicated though both passes agree"):
        merge_label_passes(prefix)


def test_merge_names_file_and_line_of_mismatched_ids(tmp_path):
    prefix = labeling(tmp_path, FIRST, FIRST)
    pass2 = prefix.with_name("v2.pass2.jsonl")
    lines = pass2.read_text().splitlines()
    pass2.write_text("\n".join([*lines[:3], lines[3].replace('"i3"', '"i33"'), *lines[4:]]) + "\n")
    with pytest.raises(LabelPassError, match=r"v2\.pass2\.jsonl: line 4: id i33 is not in the items file"):
        merge_label_passes(prefix)
    pass2.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(LabelPassError, match=r"v2\.pass2\.jsonl: 1 item id\(s\) of the items file missing, e\.g\. i9"):
        merge_label_passes(prefix)
    pass2.write_text("\n".join([*lines, lines[0]]) + "\n")
    with pytest.raises(LabelPassError, match=r"line 11: id i0 appears twice"):
        merge_label_passes(prefix)
    pass2.write_text("\n".join([lines[0].replace('"refusal"', '"REFUSAL"'), *lines[1:]]) + "\n")
    with pytest.raises(LabelPassError, match=r"v2\.pass2\.jsonl: line 1 \(id i0\): label must be one of"):
        merge_label_passes(prefix)
    pass2.unlink()
    with pytest.raises(LabelPassError, match=r"v2\.pass2\.jsonl does not exist"):
        merge_label_passes(prefix)
    with pytest.raises(SystemExit, match="error: .*does not exist"):
        _main(["merge", "--prefix", str(prefix)])


def test_merge_agreeing_passes_need_no_adjudication_file(tmp_path):
    prefix = labeling(tmp_path, FIRST, FIRST)
    summary = merge_label_passes(prefix)
    assert summary["agreement"] == 1.0 and summary["cohen_kappa"] == pytest.approx(1.0)
    assert summary["n_disagreements"] == 0 and len(load_labeled(prefix.with_name("v2.jsonl"))) == 10
