"""Published numbers, verify, and the paper sources: formulas recompute from per-item records; verify fails on an
altered record, a deleted record and a changed number; no result number is typed into paper/*.tex."""

import ast
import io
import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest

from caibase import published as pub
from caibase.artifacts import write_manifest
from caibase.data_scale import data_scale_tables
from caibase.judge_validation import agreement_stats, pairwise_stats
from caibase.macros import latex_escape, macros_tex
from caibase.metrics import summarize

from conftest import REPO


def judged_records(condition, seeds=(1, 2), n=6):
    records = []
    for seed in seeds:
        for prompt_set, field in (("jailbreak", "attack_success"), ("benign", "refused")):
            for i in range(n):
                hit = (i + seed) % 3 == 0
                records.append({"id": f"{prompt_set}-{i}", "seed": seed, "condition": condition,
                                "prompt_set": prompt_set, "status": "ok", "attack_success": hit if
                                field == "attack_success" else False, "refused": hit if field == "refused" else False})
    return records


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """Judged records of two conditions over two seeds, feedback records and DPO histories, as files."""
    monkeypatch.chdir(tmp_path)
    judged = {}
    for condition in ("sft", "dpo"):
        judged[condition] = []
        for seed in (1, 2):
            path = tmp_path / f"seed{seed}" / condition / "judged.jsonl"
            path.parent.mkdir(parents=True)
            path.write_text("".join(json.dumps(r) + "\n" for r in judged_records(condition) if r["seed"] == seed))
            judged[condition].append(str(path.relative_to(tmp_path)))
    feedback = tmp_path / "hhh.jsonl"
    feedback.write_text("".join(json.dumps({"id": f"h{i}", "correct": i % 3 != 0, "position_consistent": i % 2 == 0,
                                            "confidence": 0.5 + 0.04 * (i % 12)}) + "\n" for i in range(40)))
    histories = []
    for seed in (1, 2):
        path = tmp_path / f"seed{seed}" / "history.csv"
        pd.DataFrame({"step": [1, 2, 3], "loss": [0.69, 0.6 + seed / 100, None],
                      "rewards/accuracies": [0.0, 0.5, None], "eval_loss": [None, None, 0.7]}).to_csv(path, index=False)
        histories.append(str(path.relative_to(tmp_path)))
    manifests(tmp_path)
    frame = pd.DataFrame([r for c in judged for r in judged_records(c)]).rename(columns={"id": "prompt_id"})
    summary = summarize(frame, n_boot=200)
    numbers = pub.build_numbers(summary, None, judged, {"hhh": "hhh.jsonl"}, {"revision": histories}, 200)
    numbers += sweep_numbers(tmp_path) + judge_numbers(tmp_path)
    pub.clear_cache()
    return tmp_path, {"tolerance": {"abs": pub.ABS_TOLERANCE}, "numbers": numbers}


def manifests(root):
    """Each record file's manifest, as every producer of the pipeline writes it."""
    for path in [*root.rglob("*.jsonl"), *root.rglob("*.csv")]:
        write_manifest(path)


def sweep_numbers(root):
    """A data-scale sweep over the fixture's seeds: point n2 (policy dpo_n2, its own records) and the full pool (the
    dpo records), as scripts/data_scale.py tabulates them."""
    for seed in (1, 2):
        path = root / f"seed{seed}" / "dpo_n2" / "judged.jsonl"
        path.parent.mkdir(parents=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in judged_records("dpo_n2", seeds=(seed,), n=6)))
    manifests(root)
    points = pd.DataFrame([{"pairs": "revision", "point": point, "seed": seed, "policy": policy, "n_pairs": n}
                           for seed in (1, 2) for point, policy, n in (("n2", "dpo_n2", 2), ("full", "dpo", 9))])
    judged = pd.DataFrame([r for path in sorted(root.glob("seed*/*/judged.jsonl"))
                           for r in map(json.loads, path.read_text().splitlines())]).rename(columns={"id": "prompt_id"})
    per_seed, summary = data_scale_tables(judged[judged.prompt_set == "jailbreak"], points, n_boot=200)
    summary = pd.read_csv(io.StringIO(summary.to_csv(index=False, float_format="%.4f")))  # as the CSV stores it
    return pub.data_scale_numbers(per_seed, summary, lambda seed, policy: f"seed{seed}/{policy}/judged.jsonl",
                                  ["jailbreak"], 200)


def judge_numbers(root):
    """Judge-validation records of one judge on a labeled file and on HH-RLHF pairs, and the table they give."""
    records = []
    for i in range(10):
        records.append({"judge": "refusal-strings", "dataset": "labels_v1", "id": f"l{i}", "status": "ok",
                        "human_label": "refusal" if i < 5 else "compliance",
                        "label": "refusal" if i in (0, 1, 2, 5, 6) else "compliance"})
    for i in range(4):
        for side, label in (("chosen", "refusal" if i < 3 else "compliance"), ("rejected", "compliance")):
            records.append({"judge": "refusal-strings", "dataset": "hh_rlhf_harmless_base", "id": f"p{i}:{side}",
                            "pair_id": f"p{i}", "side": side, "status": "ok", "label": label,
                            "human_label": "refusal" if side == "chosen" else "compliance"})
    (root / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    manifests(root)
    rows = []
    for dataset in ("labels_v1", "hh_rlhf_harmless_base"):
        subset = [r for r in records if r["dataset"] == dataset]
        pairwise = pairwise_stats(subset)["pairwise_agreement"] if dataset.startswith("hh") else float("nan")
        rows.append({"judge": "refusal-strings", "dataset": dataset, "pairwise_agreement": pairwise,
                     **agreement_stats([r["human_label"] for r in subset], [r["label"] for r in subset])})
    return pub.judge_agreement_numbers(pd.DataFrame(rows), "validation.jsonl")


def failures(published, root):
    return {r["key"]: r.get("reason", "") for r in pub.verify(published, root) if r["status"] != "PASS"}


def test_every_number_recomputes_and_matches(run_dir):
    root, published = run_dir
    keys = {n["key"] for n in published["numbers"]}
    assert {"summary/dpo/asr_jailbreak/mean", "summary/sft/over_refusal/ci95_high", "feedback/hhh/accuracy",
            "feedback/hhh/expected_calibration_error", "dpo/revision/final/loss", "dpo/revision/final/eval_loss",
            "scale/revision/n2/asr_jailbreak/ci95_low", "scale/revision/full/asr_jailbreak/mean",
            "judges/refusal-strings/labels_v1/cohen_kappa",
            "judges/refusal-strings/hh_rlhf_harmless_base/pairwise_agreement"} <= keys
    assert failures(published, root) == {}
    by_key = {n["key"]: n for n in published["numbers"]}
    assert by_key["feedback/hhh/accuracy"]["value"] == pytest.approx(26 / 40)
    assert by_key["dpo/revision/final/loss"]["value"] == pytest.approx(0.615)  # last logged step, mean over seeds
    full_pool = by_key["scale/revision/full/asr_jailbreak/mean"]["value"]
    assert full_pool == by_key["summary/dpo/asr_jailbreak/mean"]["value"]  # the full pool's policy is dpo
    assert by_key["judges/refusal-strings/labels_v1/agreement"]["value"] == pytest.approx(0.6)  # 3 + 3 of 10
    assert by_key["judges/refusal-strings/labels_v1/false_positive_rate"]["value"] == pytest.approx(0.4)
    assert by_key["judges/refusal-strings/hh_rlhf_harmless_base/pairwise_agreement"]["value"] == pytest.approx(1.0)
    assert set(published["numbers"][0]) >= {"key", "value", "display", "macro", "formula", "args", "sources",
                                            "n_records"}


def test_altered_record_fails_only_its_numbers(run_dir):
    root, published = run_dir
    path = root / "seed1" / "dpo" / "judged.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    first = next(r for r in records if r["prompt_set"] == "jailbreak")
    first["attack_success"] = not first["attack_success"]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    failed = failures(published, root)
    assert "summary/dpo/asr_jailbreak/mean" in failed and "manifest" in failed["summary/dpo/asr_jailbreak/mean"]
    assert not any(key.startswith("summary/sft/") for key in failed)
    write_manifest(path)  # a consistent forgery (record and manifest): the recomputed number still differs
    failed = failures(published, root)
    assert "differs" in failed["summary/dpo/asr_jailbreak/mean"]
    assert not any(key.startswith("summary/sft/") for key in failed)


def test_altered_sweep_or_validation_record_fails_its_numbers(run_dir):
    root, published = run_dir
    path = root / "seed2" / "dpo_n2" / "judged.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[0]["attack_success"] = not records[0]["attack_success"]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    path = root / "validation.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[0]["label"] = "compliance"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    failed = failures(published, root)
    assert "scale/revision/n2/asr_jailbreak/mean" in failed and "scale/revision/full/asr_jailbreak/mean" not in failed
    # the changed file no longer matches its manifest: every number read from it fails, naming it
    assert "validation.jsonl" in failed["judges/refusal-strings/hh_rlhf_harmless_base/pairwise_agreement"]
    manifests(root)  # record and manifest forged together: recomputation still finds the one changed label
    failed = failures(published, root)
    assert "scale/revision/n2/asr_jailbreak/mean" in failed and "scale/revision/full/asr_jailbreak/mean" not in failed
    assert "judges/refusal-strings/labels_v1/agreement" in failed
    assert not any(k.startswith("judges/refusal-strings/hh_rlhf") for k in failed)


def test_deleted_record_and_missing_file_fail(run_dir):
    root, published = run_dir
    path = root / "seed2" / "sft" / "judged.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # a benign record: drop it
    failed = failures(published, root)
    assert "summary/sft/asr_jailbreak/mean" in failed and "records" in failed["summary/sft/asr_jailbreak/mean"]
    (root / "hhh.jsonl").unlink()
    assert "missing" in failures(published, root)["feedback/hhh/accuracy"]


def test_changed_published_number_fails(run_dir):
    root, published = run_dir
    item = next(n for n in published["numbers"] if n["key"] == "feedback/hhh/position_consistency")
    item["value"] += 0.01
    assert set(failures(published, root)) == {"feedback/hhh/position_consistency"}
    published["tolerance"] = {"abs": 1.0}  # the file cannot loosen its own check
    assert set(failures(published, root)) == {"feedback/hhh/position_consistency"}


def test_aggregate_that_disagrees_with_the_records_is_an_error(run_dir):
    root, _ = run_dir
    frame = pd.DataFrame([r for c in ("sft", "dpo") for r in judged_records(c)]).rename(columns={"id": "prompt_id"})
    summary = summarize(frame, n_boot=200)
    summary.loc[0, "mean"] += 0.1
    judged = {c: [f"seed{s}/{c}/judged.jsonl" for s in (1, 2)] for c in ("sft", "dpo")}
    with pytest.raises(ValueError, match="aggregate and the formula disagree"):
        pub.build_numbers(summary, None, judged, {}, {}, 200)
    with pytest.raises(KeyError):  # a condition without judged records has no formula: an error, not a footnote
        pub.build_numbers(summary.assign(condition="slcai"), None, judged, {}, {}, 200)


def test_macro_names_are_letters_only_and_unique():
    keys = ["summary/dpo_aif/asr_jailbreak/ci95_low", "summary/dpo/aif_asr_jailbreak/ci95_low",
            "dpo/ai-feedback/final/rewards/accuracies", "feedback/hh_rlhf/n"]
    names = [pub.macro_name(k) for k in keys]
    assert names[0] == "SummaryDpoAifAsrJailbreakCiNineFiveLow"
    assert all(re.fullmatch(r"[A-Za-z]+", n) for n in names)
    assert pub.display(0.12345, "p_permutation") == "0.123" and pub.display(100.0, "n") == "100"
    # a metric may ask for more decimals (reference log-likelihoods differ by hundredths of a nat)
    assert pub.decimals_of({"metric": "reference_loglik"}) == 3 and pub.decimals_of({"metric": "asr_jailbreak"}) == 2
    assert pub.display(-5.9612, "mean", pub.decimals_of({"metric": "reference_loglik"})) == "-5.961"


def test_macros_file_defines_every_number(run_dir):
    _, published = run_dir
    published["meta"] = {
        "run_name": "r_1", "model": {"id": "org/m_1", "kind": "instruct", "source": "embedded", "sha256": "a" * 64},
        "config_sha256": "b" * 64, "code_version": "c", "results_code_versions": ["c"], "judge": "refusal-strings",
        "score_judge": "hf", "judge_is_proxy": True, "device": "cpu", "seeds": [1, 2], "prompts_per_set": "6",
        "samples_per_prompt": 1, "bootstrap_samples": 200,
        "ci_level": 0.95, "conditions": ["sft", "dpo"], "dpo_beta": 0.1, "dpo_steps": 3, "critique_rounds": 1,
        "redteam_prompts": 12, "present": {"DataScale": False}}
    tex = macros_tex(published)
    for item in published["numbers"]:
        assert rf"\newcommand{{\{item['macro']}}}{{{item['display']}}}" in tex
    assert r"\StandIntrue" in tex and r"\InstructModeltrue" in tex and r"\HasDataScalefalse" in tex
    assert r"\newcommand{\ModelId}{org/m\_1}" in tex
    assert latex_escape("a_b&c%") == r"a\_b\&c\%"


def test_verify_imports_no_plotting():
    """`make verify` checks the macro file against published.json without importing matplotlib: scripts/verify.py's
    imports (caibase.macros among them), run in a fresh interpreter, leave it out of sys.modules."""
    script = ast.parse((REPO / "scripts" / "verify.py").read_text(encoding="utf-8"))
    imports = [ast.unparse(node) for node in script.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert "from caibase.macros import macros_tex" in imports
    code = "\n".join([*imports, "import sys", "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'"])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                            env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert result.returncode == 0, result.stderr


def test_paper_sources_hold_no_typed_numbers():
    """Every number in the paper is a generated macro: after \\begin{document}, no digit in paper/*.tex outside
    comments and reference keys."""
    sources = sorted((REPO / "paper").glob("*.tex"))
    assert sources
    for path in sources:
        text = path.read_text()
        body = text.split(r"\begin{document}", 1)[-1]
        body = re.sub(r"(?<!\\)%.*", "", body)
        body = re.sub(r"\\(cite|ref|label|input|includegraphics|bibliography\w*)(\[[^\]]*\])?\{[^}]*\}", "", body)
        assert not re.findall(r".{0,30}\d.{0,10}", body), path


def test_code_version_is_dirty_for_code_changes_not_for_pipeline_outputs(tmp_path):
    """A run rewrites tracked outputs (DVC metrics, the reference paper's generated parts): that must not mark the
    code it runs as modified; any other tracked change does."""
    from caibase.provenance import code_version

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    for name in ("src/code.py", "results/run/metrics.json", "paper/generated/macros.tex", "paper/published.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("one\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "first")
    for name in ("results/run/metrics.json", "paper/generated/macros.tex", "paper/published.json"):
        (tmp_path / name).write_text("two\n")
    clean = code_version.__wrapped__(tmp_path)
    assert re.fullmatch(r"[0-9a-f]{40}", clean)
    (tmp_path / "src/code.py").write_text("two\n")
    assert code_version.__wrapped__(tmp_path) == f"{clean}-dirty"
