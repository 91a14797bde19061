"""The whole DAG for real: `snakemake --cores 2` on config/smoke.yaml (tiny random model), plus dry runs and lint."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_records import KINDS, check_run_records

from caibase.artifacts import write_manifest
from caibase.metrics import METRIC_BY_NAME, is_rate
from caibase.records import ExcludedPairRecord
from caibase.report import shown_metrics

from conftest import REPO, load_config, snakemake_bin


def snakemake(workdir, config_name, *args, timeout=900):
    return subprocess.run(
        [snakemake_bin(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(REPO / "config" / config_name), *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)}


@pytest.mark.parametrize("config_name", ["config.yaml", "smoke.yaml", "paper.yaml"])
def test_dry_run_lists_the_expected_jobs(tmp_path, config_name):
    config = load_config(config_name)
    result = snakemake(tmp_path, config_name, "-n", "--cores", "1")
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    seeds, conditions = len(config["seeds"]), len(config["evaluation"]["conditions"])
    for rule in ("prepare_model", "build_redteam_set", "check_prompt_splits", "validate_judges", "aggregate",
                 "publish_numbers", "render_report", "paper"):
        assert counts[rule] == 1, rule
    assert counts.get("publish_reference", 0) == int(config["report"]["publish_dir"] is not None)
    assert "verify" not in counts  # a reviewer's target, not part of a run
    for rule in ("sft", "critique_revise", "preference_pairs", "slcai_sft"):
        assert counts[rule] == seeds, rule
    aif = "dpo_aif" in config["evaluation"]["conditions"]
    assert counts["dpo"] == seeds * (1 + aif) and counts.get("ai_feedback_labels", 0) == seeds * aif
    assert counts.get("validate_feedback_model", 0) == int(config["feedback"]["validate"])
    assert counts["generate_redteam"] == seeds
    sweep = config["dpo"]["sweep"]
    points = len(sweep["pairs"]) * len(sweep["sizes"])
    assert counts.get("dpo_subsample", 0) == seeds * points and counts.get("data_scale", 0) == int(points > 0)
    assert counts["generate_eval"] == counts["judge"] == seeds * (conditions + points)
    assert counts.get("prepare_reference_model", 0) == int("instruct_ref" in config["evaluation"]["conditions"])


def planned_jobs(output: str, rule: str) -> list[dict[str, str]]:
    """The jobs of `rule` a dry run prints: each job's `input` and `output` lines."""
    blocks = re.findall(rf"^rule {rule}:\n((?:    .*\n)+)", output, flags=re.M)
    return [dict(re.findall(r"^    (\w+): (.*)$", block, flags=re.M)) for block in blocks]


@pytest.mark.parametrize("config_name", ["config.yaml", "seed.yaml"])
def test_instruct_ref_generates_from_the_reference_model(tmp_path, config_name):
    """generate_eval takes the instruct reference's model_info.json for instruct_ref, the run's prepared model for
    every other policy; the reference is prepared once, by its own rule."""
    run = load_config(config_name)["run_name"]
    result = snakemake(tmp_path, config_name, "-n", "--cores", "1", "--forceall",
                       f"results/{run}/seed1/eval/instruct_ref/responses.jsonl",
                       f"results/{run}/seed1/eval/base/responses.jsonl")
    assert result.returncode == 0, result.stderr
    assert [job["output"] for job in planned_jobs(result.stdout, "prepare_reference_model")] == [
        f"results/{run}/reference_model/model_info.json"]
    inputs = {job["output"].split("/")[-2]: job["input"] for job in planned_jobs(result.stdout, "generate_eval")}
    assert set(inputs) == {"instruct_ref", "base"}
    assert f"results/{run}/reference_model/model_info.json" in inputs["instruct_ref"]
    assert f"results/{run}/model/model_info.json" not in inputs["instruct_ref"]
    assert f"results/{run}/model/model_info.json" in inputs["base"] and "reference_model" not in inputs["base"]


def test_a_configfile_inherits_nothing_from_the_default_config(tmp_path):
    """Keys a --configfile leaves out take the schema's defaults, not config/config.yaml's (which sets
    report.publish_dir and a data-scale sweep): Snakemake would merge the default underneath otherwise."""
    (tmp_path / "config").mkdir()
    shutil.copy(REPO / "config" / "config.yaml", tmp_path / "config" / "config.yaml")  # where the default is found
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    del config["report"], config["dpo"]["sweep"]
    (tmp_path / "partial.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([snakemake_bin(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                             "--configfile", str(tmp_path / "partial.yaml"), "-n", "--cores", "1"],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert "publish_reference" not in counts and "data_scale" not in counts and counts["paper"] == 1


@pytest.mark.parametrize("config_name", ["config.yaml", "smoke.yaml", "paper.yaml"])
def test_lint_is_clean(config_name):
    """No lint, except that rules name no software environment while the config's `container` is null: the image is
    not published yet, and there is no conda env (conda cannot install the hash-locked requirements together with
    the package itself)."""
    result = subprocess.run([snakemake_bin(), "--lint", "--configfile", f"config/{config_name}"],
                            cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    lints = set(re.findall(r"^\s+\* (.+?):$", result.stdout + result.stderr, flags=re.M))
    allowed = {"Specify a conda environment or container for each rule."}
    assert lints <= (allowed if load_config(config_name)["container"] is None else set()), result.stdout[-3000:]
    assert "Lints for" not in result.stdout + result.stderr or lints, result.stdout[-3000:]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


NO_TEX = shutil.which("latexmk") is None
NO_TEX_REASON = "latexmk not installed (.ci/run installs texlive and latexmk from Debian)"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, public_data):
    """One smoke run shared by every test here; without TeX it stops before the paper rule."""
    workdir = tmp_path_factory.mktemp("smoke")
    result = snakemake(workdir, "smoke.yaml", "--cores", "2", *(["--omit-from", "paper"] if NO_TEX else []))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir / "results" / "smoke", load_config("smoke.yaml")


def test_smoke_run_writes_every_stage(smoke_run):
    out, config = smoke_run
    model_info = json.loads((out / "model" / "model_info.json").read_text())
    assert model_info["kind"] == "base" and len(model_info["sha256"]) == 64
    assert json.loads((out / "checks" / "prompt_splits.json").read_text())["contaminated_pairs"] == 0
    for seed in config["seeds"]:
        seed_dir = out / f"seed{seed}"
        for stage, trainer in (("sft", "sft"), ("slcai", "slcai_sft"), ("dpo/revision", "dpo"),
                               ("dpo/ai-feedback", "dpo")):
            adapter = seed_dir / stage / "adapter"
            assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "adapter_config.json").is_file()
            stamp = json.loads((adapter / "caibase.json").read_text())
            assert stamp["seed"] == seed and stamp["model_sha256"] == model_info["sha256"]
            history = pd.read_csv(seed_dir / stage / "history.csv")
            train_rows = history[history["loss"].notna()]
            assert len(train_rows) == config[trainer]["max_steps"]
            if stage.startswith("dpo"):  # dev-split metrics logged every eval_steps
                assert history["eval_loss"].notna().sum() >= config["dpo"]["max_steps"] // config["dpo"]["eval_steps"]
                assert stamp["n_dev_pairs"] >= 1
        assert {"rewards/margins", "rewards/accuracies", "logps/chosen"} <= set(
            pd.read_csv(seed_dir / "dpo" / "revision" / "history.csv").columns)
        labels = read_jsonl(seed_dir / "pairs" / "ai-feedback.labels.jsonl")
        assert labels and all(0 <= x["p_first"] <= 1 and x["principle_id"] for x in labels)
        aif_pairs = read_jsonl(seed_dir / "pairs" / "ai-feedback.jsonl")
        assert all(x["position_rule"] == config["feedback"]["position_inconsistent"] for x in labels)
        assert len(aif_pairs) == sum(x["kept"] for x in labels) and all(p["p_chosen"] >= 0.5 for p in aif_pairs)
        assert "label_smoothing" in pd.read_csv(seed_dir / "dpo" / "ai-feedback" / "history.csv").columns  # cDPO

        revisions = read_jsonl(seed_dir / "slcai" / "revisions.jsonl")
        assert len(revisions) == config["prompts"]["redteam_limit"] + config["prompts"]["redteam_hh_rlhf"]
        assert sum(r["id"].startswith("hh-rlhf-") for r in revisions) == config["prompts"]["redteam_hh_rlhf"]
        degenerate = json.loads((seed_dir / "slcai" / "degenerate.json").read_text())
        assert degenerate["n"] == len(revisions) and len(degenerate["rounds"]) == config["critique"]["rounds"]
        assert not list(seed_dir.rglob("*.shards")) and not list(seed_dir.rglob("*.partial"))
        for record in revisions:
            assert len(record["rounds"]) == config["critique"]["rounds"]
            assert record["final_revision"] == record["rounds"][-1]["revision"]
            assert record["provenance"]["seed"] == seed
        pairs = read_jsonl(seed_dir / "pairs" / "revision.jsonl")
        excluded = read_jsonl(seed_dir / "pairs" / "revision.excluded.jsonl") if (
            seed_dir / "pairs" / "revision.excluded.jsonl").stat().st_size else []
        assert len(pairs) + len(excluded) == len(revisions)
        for pair in pairs:
            assert pair["prompt"].startswith("\n\nHuman: ") and pair["prompt"].endswith("\n\nAssistant:")
            assert pair["chosen"] != pair["rejected"]

        limits = {name: config["prompts"]["eval_limits"].get(name, config["prompts"]["eval_limit"])
                  for name in config["prompts"]["eval"]}
        tasks = {"jailbreak": "refusal", "harmful_direct": "refusal", "benign": "refusal", "helpful": "helpfulness",
                 "style": "style"}
        for condition in config["evaluation"]["conditions"]:
            judged = read_jsonl(seed_dir / "eval" / condition / "judged.jsonl")
            sets = [r["prompt_set"] for r in judged]
            assert {name: sets.count(name) for name in set(sets)} == limits
            benign = {r["category"] for r in judged if r["prompt_set"] == "benign"}
            assert benign == {"benign", "borderline"}  # a limited set still covers both categories
            for record in judged:
                assert record["condition"] == condition and record["seed"] == seed
                assert record["task"] == tasks[record["prompt_set"]] and len(record["judge_template_sha256"]) == 64
                assert record["status"] == ("skipped_degenerate" if record["degenerate"] else "ok")
                if record["task"] == "refusal":
                    assert record["judge_is_proxy"] is True and record["score"] is None
                    assert (record["attack_success"] is None) == (record["status"] != "ok")
                else:
                    assert record["judge_backend"] == "hf"
                    assert record["status"] != "ok" or 1 <= record["score"] <= 5
                assert record["provenance"]["model_kind"] == "base"


def test_smoke_run_validates_the_feedback_model(smoke_run):
    out, config = smoke_run
    summary = json.loads((out / "feedback" / "validation" / "summary.json").read_text())
    hhh = read_jsonl(out / "feedback" / "validation" / "hhh.jsonl")
    assert len(hhh) == summary["hhh"]["n"] == 100
    assert summary["hhh"]["correct"] == sum(r["correct"] for r in hhh)
    low, high = summary["hhh"]["accuracy_ci95_wilson"]
    assert 0 <= low <= summary["hhh"]["accuracy"] <= high <= 1
    assert sum(b["n"] for b in summary["hhh"]["calibration"]) == 100
    assert summary["hh_rlhf_harmless_base"]["n"] == config["feedback"]["hh_rlhf_pairs"]


@pytest.mark.parametrize("pattern", KINDS)
def test_smoke_run_records_fit_their_types(smoke_run, pattern):
    """Every record kind the run writes fits its type in caibase.records, and the type names every field."""
    out, _ = smoke_run
    n = check_run_records(out, pattern)
    assert n > 0 or KINDS[pattern] is ExcludedPairRecord  # the smoke run's revision pairs may all be usable


def test_smoke_run_summary_table(smoke_run):
    out, config = smoke_run
    summary = pd.read_csv(out / "tables" / "summary_by_condition.csv")
    assert set(summary.condition) == set(config["evaluation"]["conditions"])
    from caibase.metrics import METRIC_BY_NAME, is_rate

    assert set(summary.metric) <= set(METRIC_BY_NAME) and "asr_jailbreak" in set(summary.metric)
    assert (summary.n_seeds == len(config["seeds"])).all()
    rates = summary[summary.metric.map(is_rate)]
    loglik = summary[summary.metric == "reference_loglik"]  # judge-free: every condition, a log-probability
    assert set(loglik.condition) == set(summary.condition) and (loglik["mean"] < 0).all()
    assert rates["mean"].between(0, 1).all() and (summary.ci_method == "bootstrap_seeds_prompts").all()
    assert (summary.ci95_low <= summary["mean"] + 1e-9).all() and (summary["mean"] <= summary.ci95_high + 1e-9).all()
    assert (summary.model_kind == "base").all()
    per_seed = pd.read_csv(out / "tables" / "per_seed.csv")
    assert len(per_seed) == len(config["seeds"]) * len(summary)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["judge_is_proxy"] is True and metrics["model"]["kind"] == "base"
    assert len(metrics["summary"]) == len(summary)
    assert metrics["feedback_validation"]["hhh"]["n"] == 100
    agreement = pd.read_csv(out / "tables" / "judge_agreement.csv")
    labeled = [Path(path).stem for path in config["evaluation"]["judge_validation"]["labeled"]]
    assert {"refusal_labels_v1", "refusal_labels_v2"} <= set(labeled)  # hand-written, and drawn from the pipeline
    assert set(agreement.dataset) == {*labeled, "hh_rlhf_harmless_base"}
    assert set(agreement.judge_backend) == {"refusal-strings", "hf"}
    assert len(metrics["judge_agreement"]) == 2 * (len(labeled) + 1)  # two judges, each on every dataset
    rows = agreement.set_index(["judge_backend", "dataset"])
    for dataset, n in (("refusal_labels_v1", 30), ("refusal_labels_v2", 160)):
        proxy = rows.loc[("refusal-strings", dataset)]
        assert proxy["n"] == n and 0 < proxy["agreement"] < 1 and -1 <= proxy["cohen_kappa"] <= 1
    assert {"false_positive_rate", "false_negative_rate", "pairwise_agreement", "pair_ties"} <= set(agreement.columns)
    assert sum(metrics["judge_status_counts"].values()) == sum(  # the conditions' records; sweep points apart
        len(read_jsonl(out / f"seed{seed}" / "eval" / condition / "judged.jsonl"))
        for seed in config["seeds"] for condition in config["evaluation"]["conditions"])
    # the judge gate (caibase.judge_gate): every task's judge gated, and a metric's rows valid only when its judge is
    from caibase.judge_gate import from_record, metric_validity

    gates = from_record(metrics["judge_gate"])
    assert set(gates) == {"refusal", "helpfulness", "style"}
    assert set(gates["refusal"].sets) == set(labeled) and gates["helpfulness"].sets["score_canary_helpfulness"]["n"]
    for row in summary.itertuples():
        assert row.valid == (metric_validity(row.metric, gates)[0] and (row.condition != "dpo_aif"
                                                                         or metrics["feedback_gate"]["valid"])), row
    paired = pd.read_csv(out / "tables" / "paired_differences.csv")
    assert {("dpo", "sft"), ("dpo_aif", "sft"), ("slcai", "base")} <= set(zip(paired.treatment, paired.control))
    assert paired.p_permutation.between(0, 1).all() and (paired.n_seeds == len(config["seeds"])).all()


def test_smoke_run_data_scale_sweep(smoke_run):
    """Nested subsamples of each seed's pool, evaluated on the sweep's sets; the capped point is left out."""
    out, config = smoke_run
    sweep = config["dpo"]["sweep"]
    small, large = sweep["sizes"]
    table = pd.read_csv(out / "tables" / "data_scale.csv")
    assert {"pairs", "n_pairs", "seed", "set", "metric", "value"} <= set(table.columns)
    assert set(table["set"]) == set(sweep["eval_sets"]) and set(table["pairs"]) == set(sweep["pairs"])
    for seed in config["seeds"]:
        full = json.loads((out / f"seed{seed}" / "dpo" / "revision" / "adapter" / "caibase.json").read_text())
        point = json.loads((out / f"seed{seed}" / "dpo" / "revision" / f"n{small}" / "adapter" / "caibase.json")
                           .read_text())
        capped = json.loads((out / f"seed{seed}" / "dpo" / "revision" / f"n{large}" / "adapter" / "caibase.json")
                            .read_text())
        assert point["n_pairs"] == small and point["pool_size"] == full["n_pairs"] and not point["capped"]
        assert capped["capped"] and capped["n_pairs"] == full["n_pairs"]
        assert capped["pair_ids"][:small] == point["pair_ids"]  # nested
        rows = table[(table.seed == seed) & (table.metric == "asr_jailbreak")]
        assert set(rows["point"]) == {"sft", f"n{small}", "full"}  # the capped point is left out
        assert sorted(rows["n_pairs"]) == [0, small, full["n_pairs"]]
        judged = read_jsonl(out / f"seed{seed}" / "eval" / f"dpo_n{small}" / "judged.jsonl")
        assert {r["prompt_set"] for r in judged} == set(sweep["eval_sets"])
    summary = pd.read_csv(out / "tables" / "data_scale_summary.csv")
    assert set(summary["metric"]) == {"asr_jailbreak", "asr_jailbreak_at_k"}
    # the judge gate marks the sweep's rates like the conditions' (caibase.judge_gate)
    refusal_valid = json.loads((out / "judges" / "gate.json").read_text())["gates"]["refusal"]["valid"]
    for frame in (table, summary):
        assert {"valid", "invalid_reason"} <= set(frame.columns)
        assert (frame[frame.pairs == "revision"].valid == refusal_valid).all()
    summary = summary[summary.metric == "asr_jailbreak"]
    assert list(summary["point"]) == ["sft", f"n{small}", "full"]
    assert (summary["n_seeds"] == len(config["seeds"])).all()
    assert (summary.ci95_low <= summary["mean"] + 1e-9).all() and (summary["mean"] <= summary.ci95_high + 1e-9).all()
    assert f"n={large}" in (out / "logs" / f"seed{config['seeds'][0]}" / f"dpo_revision_n{large}.log").read_text()


@pytest.mark.skipif(NO_TEX, reason=NO_TEX_REASON)
def test_smoke_run_builds_the_paper_from_the_metrics(smoke_run):
    """The PDF exists, and its rendered main table shows the metrics.json numbers, as mean [CI low, high]."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext not installed (.ci/run installs poppler-utils)")
    out, config = smoke_run
    text = subprocess.run(["pdftotext", "-layout", str(out / "paper" / "main.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    tables = {"safety": text.split("Table 1:")[1].split("Table 2:")[0],  # rates, then scores and lengths
              "quality": text.split("Table 2:")[1].split("Table 3:")[0]}
    metrics = json.loads((out / "metrics.json").read_text())
    shown = shown_metrics({row["metric"] for row in metrics["summary"]}, config["evaluation"]["samples_per_prompt"])
    assert shown and not any(m.endswith("_at_k") for m in shown)  # one sample per prompt: @k equals per attempt
    for row in (row for row in metrics["summary"] if row["metric"] in shown):
        name = row["condition"].replace("_", " ")  # pdftotext renders LaTeX's \\_ as a space
        table = tables["safety" if is_rate(row["metric"]) else "quality"]
        line = next(ln for ln in table.splitlines() if re.match(rf"\s*{name}\s+\d", ln))
        d = METRIC_BY_NAME[row["metric"]].decimals  # printed as published.display prints it
        assert f"{row['mean']:.{d}f} [{row['ci95_low']:.{d}f}, {row['ci95_high']:.{d}f}]" in line, (row, line)
    assert "CPU stand-in run" in text and "[not in this run]" not in text
    published = json.loads((out / "paper" / "published.json").read_text())
    joined = " ".join(text.split())
    assert published["meta"]["config_sha256"][:12] in joined and published["meta"]["model"]["id"] in joined
    assert f"All {len(published['numbers'])} numbers" in joined


def verify(workdir):
    return snakemake(workdir, "smoke.yaml", "--cores", "1", "verify", "--allowed-rules", "verify",
                     "--forcerun", "verify", timeout=300)


@pytest.fixture
def smoke_copy(smoke_run, tmp_path):
    """A copy of the smoke run's artifacts, as a reviewer would pull them, to tamper with."""
    out, _ = smoke_run
    shutil.copytree(out, tmp_path / "results" / "smoke", ignore=shutil.ignore_patterns("weights", "adapter"))
    return tmp_path


def test_verify_passes_on_the_smoke_run_without_running_anything_upstream(smoke_copy):
    published = json.loads((smoke_copy / "results/smoke/paper/published.json").read_text())
    result = verify(smoke_copy)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("PASS  ") == len(published["numbers"]) + 1 > 100  # and the macro file
    assert "PASS  results/smoke/paper/generated/macros.tex  is the macro file" in result.stdout
    assert "Rule: verify" in result.stderr and "1 of 1 steps" in result.stderr


def test_verify_fails_on_an_altered_judged_record(smoke_copy):
    path = smoke_copy / "results/smoke/seed2/eval/slcai/judged.jsonl"
    records = read_jsonl(path)
    target = next(r for r in records if r["prompt_set"] == "jailbreak")
    target["attack_success"] = not target["attack_success"]
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    result = verify(smoke_copy)
    assert result.returncode != 0
    assert re.search(r"^FAIL  summary/slcai/asr_jailbreak/mean", result.stdout, flags=re.M), result.stdout[-3000:]
    assert re.search(r"^PASS  summary/sft/asr_jailbreak/mean", result.stdout, flags=re.M)


def test_verify_fails_on_a_deleted_record(smoke_copy):
    """Dropping one benign record leaves the jailbreak rate unchanged, but not the record count it was read from."""
    path = smoke_copy / "results/smoke/seed1/eval/base/judged.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    dropped = next(i for i, line in enumerate(lines) if json.loads(line)["prompt_set"] == "benign")
    path.write_text("".join(lines[:dropped] + lines[dropped + 1:]))
    result = verify(smoke_copy)
    assert result.returncode != 0
    assert re.search(rf"^FAIL  summary/base/asr_jailbreak/mean .*judged.jsonl: {len(lines) - 1} records "
                     rf".*manifest says {len(lines)} records", result.stdout, flags=re.M), result.stdout[-3000:]
    assert re.search(r"^PASS  feedback/hhh/accuracy ", result.stdout, flags=re.M)
    write_manifest(path)  # file and manifest changed together: the record count still differs from the published one
    result = verify(smoke_copy)
    assert re.search(r"^FAIL  summary/base/asr_jailbreak/mean .*read \d+ records, published from",
                     result.stdout, flags=re.M), result.stdout[-3000:]


def test_verify_fails_on_a_changed_published_number(smoke_copy):
    path = smoke_copy / "results/smoke/paper/published.json"
    published = json.loads(path.read_text())
    number = next(n for n in published["numbers"] if n["key"] == "summary/dpo/over_refusal/mean")
    number["value"] += 0.02
    path.write_text(json.dumps(published))
    result = verify(smoke_copy)
    assert result.returncode != 0
    assert re.findall(r"^FAIL  (\S+)", result.stdout, flags=re.M) == ["summary/dpo/over_refusal/mean"]


def test_verify_fails_on_a_changed_macro(smoke_copy):
    """The PDF prints the macro file: a number changed there, and not in published.json, fails too."""
    path = smoke_copy / "results/smoke/paper/generated/macros.tex"
    published = json.loads((smoke_copy / "results/smoke/paper/published.json").read_text())
    number = next(n for n in published["numbers"] if n["key"] == "summary/dpo/asr_jailbreak/mean")
    line = rf"\newcommand{{\{number['macro']}}}{{{number['display']}}}"
    path.write_text(path.read_text().replace(line, line.replace(number["display"], "0.123")))
    result = verify(smoke_copy)
    assert result.returncode != 0
    assert re.findall(r"^FAIL  (\S+)", result.stdout, flags=re.M) == ["results/smoke/paper/generated/macros.tex"]


def test_smoke_run_is_complete_and_nothing_left_to_do(smoke_run):
    out, _ = smoke_run
    workdir = out.parents[1]
    result = snakemake(workdir, "smoke.yaml", "-n", "--cores", "1")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr
    assert not list(workdir.rglob(".*.tmp")), "temporary files left behind"


def test_contaminated_eval_set_fails_the_run(tmp_path, request, public_data):
    config = load_config("smoke.yaml")
    train = [json.loads(line) for line in (REPO / config["prompts"]["redteam_train"]).read_text().splitlines()]
    # config paths stay inside the repository: the leaky set goes to an ignored folder there, removed afterwards
    leaked = REPO / "results" / f"test-leak-{tmp_path.name}" / "leaky_eval.jsonl"
    leaked.parent.mkdir(parents=True)
    request.addfinalizer(lambda: shutil.rmtree(leaked.parent))
    leaked.write_text(json.dumps({"id": "leak-1", "category": "direct", "split": "eval",
                                  "prompt": train[5]["prompt"]}) + "\n")
    config["prompts"]["eval"] = {"jailbreak": str(leaked.relative_to(REPO))}
    config_file = tmp_path / "leaky.yaml"
    import yaml  # noqa: PLC0415

    config_file.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [snakemake_bin(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
         str(config_file), "--cores", "1", "results/smoke/checks/prompt_splits.json"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode != 0
    log = (tmp_path / "results" / "smoke" / "logs" / "check_prompt_splits.log").read_text()
    assert f"redteam_train/{train[5]['id']}" in log and "jailbreak/leak-1" in log
    assert not (tmp_path / "results" / "smoke" / "checks" / "prompt_splits.json").exists()


# Files under results/ that record the machine, not the result: logs and benchmark timings (wall clock, memory),
# the trainers' timing columns, verify's own report, and the cost table and the PDF that prints it (the published
# cost numbers are compared apart: see without_cost).
NOT_DETERMINISTIC = ("logs/", "benchmarks/", "verify/", "paper/generated/tables/cost.", "paper/main.pdf")


def without_cost(name: str, data: bytes) -> bytes:
    """published.json and the macro file less the run's cost (caibase.cost), which measures the machine."""
    if name == "paper/published.json":
        published = json.loads(data)
        published["numbers"] = [n for n in published["numbers"] if not n["key"].startswith("cost/")]
        return json.dumps(published).encode()
    if name == "paper/generated/macros.tex":
        return b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(rb"\newcommand{\Cost"))
    return data


def test_same_seed_reruns_byte_identical_and_seeds_differ(smoke_run, tmp_path):
    """A second run of the smoke config in a fresh directory writes the same bytes for every file under results/
    (NOT_DETERMINISTIC and *.timing.csv aside, the cost numbers apart); the two seeds of one run give different
    responses."""
    out, config = smoke_run
    result = snakemake(tmp_path, "smoke.yaml", "--cores", "2", *(["--omit-from", "paper"] if NO_TEX else []))
    assert result.returncode == 0, result.stderr[-3000:]
    again = tmp_path / "results" / "smoke"

    def outputs(root):
        return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()
                and not p.relative_to(root).as_posix().startswith(NOT_DETERMINISTIC)
                and not p.name.endswith(".timing.csv")}

    names = outputs(out)
    assert names == outputs(again)
    assert any(name.endswith("adapter/adapter_config.json") for name in names) and len(names) > 100
    differ = [name for name in sorted(names)
              if without_cost(name, (out / name).read_bytes()) != without_cost(name, (again / name).read_bytes())]
    assert not differ, differ
    first, second = (read_jsonl(out / f"seed{s}" / "slcai" / "responses.jsonl") for s in config["seeds"][:2])
    assert [r["response"] for r in first] != [r["response"] for r in second]


def test_sigkill_mid_run_resumes_to_the_same_outputs(smoke_run, tmp_path):
    """Kill Snakemake and its jobs with SIGKILL once a generation shard exists, `--unlock`, resume with
    --rerun-incomplete, and end with the same bytes as the uninterrupted run."""
    import os
    import signal
    import time

    out, config = smoke_run
    cmd = [snakemake_bin(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           "--configfile", str(REPO / "config" / "smoke.yaml"), "--cores", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    results = tmp_path / "results" / "smoke"
    while time.time() < deadline and proc.poll() is None:
        if any(p.stat().st_size for p in results.rglob("*.partial")) or any(
                p.stat().st_size for p in results.rglob("*.shards/*.jsonl")):
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before a shard was seen"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(results.rglob("*.partial")) + list(results.rglob("*.shards")), "finished batches stay behind"

    # A killed Snakemake leaves its lock behind; unlocking is the documented first step.
    subprocess.run(cmd + ["--unlock"], capture_output=True, text=True, timeout=120, check=True)
    resumed = subprocess.run(cmd + ["--rerun-incomplete"], capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    names = ["metrics.json"] + [f"seed{s}/{name}" for s in config["seeds"] for name in (
        "slcai/responses.jsonl", "slcai/revisions.jsonl", "pairs/revision.jsonl", "pairs/ai-feedback.jsonl")]
    for name in names:
        assert (results / name).read_bytes() == (out / name).read_bytes(), name
    assert not list(results.rglob("*.partial")) and not list(results.rglob("*.shards"))


def test_rerunning_a_judge_job_reads_the_cache(smoke_run):
    """Delete one judged file and rerun its job: every verdict comes from judge_cache/ and the file is the same."""
    out, config = smoke_run
    judged = out / f"seed{config['seeds'][0]}" / "eval" / "dpo" / "judged.jsonl"
    before = judged.read_bytes()
    # the rerun writes its own benchmark TSV (a source of the published cost numbers); put the run's back after, so
    # the shared smoke run stays the one its published.json describes
    benchmark = out / "benchmarks" / "judge" / f"seed{config['seeds'][0]}" / "dpo.tsv"
    kept, stat = benchmark.read_bytes(), benchmark.stat()
    judged.unlink()
    result = snakemake(out.parents[1], "smoke.yaml", "--cores", "1", str(judged.relative_to(out.parents[1])))
    benchmark.write_bytes(kept)
    os.utime(benchmark, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert result.returncode == 0, result.stderr[-3000:]
    assert judged.read_bytes() == before
    records = read_jsonl(judged)
    n_judged = sum(r["status"] != "skipped_degenerate" for r in records)
    log = (out / "logs" / f"seed{config['seeds'][0]}" / "judge_dpo.log").read_text()
    assert f"judged {len(records)} responses ({n_judged} from the cache)" in log


def test_reviewer_path_push_clone_pull_has_nothing_to_do(smoke_run, tmp_path):
    """The reviewers' path on the smoke run, against a real local DVC remote: record the run (`dvc commit`),
    `dvc push`, clone the repository elsewhere, `dvc pull`; DVC does not restore mtimes, so Snakemake would rerun
    jobs; `python -m caibase.dvc_pull` (what `make pull` runs) checks dvc.lock and touches, and then Snakemake has
    nothing to do. A clone whose code differs from dvc.lock is refused."""
    out, _ = smoke_run
    dvc = str(Path(sys.executable).parent / "dvc")
    origin, remote, clone = tmp_path / "origin", tmp_path / "remote", tmp_path / "clone"

    def run(cmd, cwd, ok=True):
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
        assert not ok or result.returncode == 0, f"{cmd}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
        return result

    def git(*args, cwd):
        return run(["git", "-c", "user.name=caibase-test", "-c", "user.email=test@caibase.invalid", *args], cwd)

    # The working tree as a repository of its own (tracked and new files, nothing ignored), versioning smoke.yaml.
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=REPO).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (origin / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, origin / name)
    dvc_yaml = origin / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("config/config.yaml", "config/smoke.yaml")
                        .replace("sweep_policies: [dpo_n4, dpo_n12]", "sweep_policies: [dpo_n3, dpo_n64]")
                        # smoke.yaml has no instruct reference (the header of dvc.yaml says what to delete)
                        .replace("      - results/${run_name}/reference_model/model_info.json: {cache: false, persist: "
                                 "true}\n", "")
                        .replace(' "results/${run_name}/reference_model/model_info.json",', ""))
    assert "reference_model/" not in dvc_yaml.read_text().split("stages:")[1]
    git("init", "-q", cwd=origin)
    git("add", "-A", cwd=origin)
    git("commit", "-q", "-m", "code", cwd=origin)

    shutil.copytree(out, origin / "results" / "smoke")  # the smoke run, as `make run` would leave it
    run([dvc, "remote", "modify", "--local", "localdir", "url", str(remote)], origin)
    run([dvc, "commit", "--force"], origin)
    assert run([dvc, "status", "--json"], origin).stdout.strip() in ("{}", "")
    run([dvc, "push"], origin)
    git("add", "dvc.lock", "results", cwd=origin)  # the records (`cache: false` outs) and their manifests
    git("commit", "-q", "-m", "reference run", cwd=origin)

    # A reviewer's fresh clone verifies offline, before any pull: the records are in git.
    offline = tmp_path / "offline"
    git("clone", "-q", str(origin), str(offline), cwd=tmp_path)
    assert not (offline / "results" / "smoke" / "seed1" / "dpo" / "revision" / "adapter").exists()
    # The reference config publishes published.json and macros.tex to paper/, in git; the smoke config has no
    # publish_dir, so they stay in its DVC-cached paper/ folder: place them as a commit of paper/ would.
    for name in ("paper/published.json", "paper/generated/macros.tex"):
        (offline / "results" / "smoke" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(out / name, offline / "results" / "smoke" / name)
    venv = Path(snakemake_bin()).parent.parent
    recipe = run(["make", "-s", "-n", "verify", "CONFIG=config/smoke.yaml", f"VENV={venv}"], offline).stdout
    verify_offline = run(["bash", "-c", recipe.strip().splitlines()[-1]], offline, ok=False)
    assert verify_offline.returncode == 0, verify_offline.stdout[-3000:] + verify_offline.stderr[-3000:]
    assert " 0 FAIL " in verify_offline.stdout and "1 of 1 steps" in verify_offline.stderr

    git("clone", "-q", str(origin), str(clone), cwd=tmp_path)
    run([dvc, "remote", "modify", "--local", "localdir", "url", str(remote)], clone)
    run([dvc, "pull"], clone)
    for name in ("seed1/eval/dpo/judged.jsonl", "seed2/pairs/ai-feedback.jsonl", "seed1/dpo/revision/adapter/"
                 "adapter_model.safetensors", "model/model_info.json", "metrics.json"):
        assert (clone / "results" / "smoke" / name).read_bytes() == (out / name).read_bytes(), name
    dry_run = [snakemake_bin(), "--dry-run", "--cores", "1", "--configfile", "config/smoke.yaml"]
    dry = run(dry_run, clone)
    assert "Nothing to be done" not in dry.stdout + dry.stderr, "pulled mtimes happened to be in DAG order"

    pulled = run([sys.executable, "-m", "caibase.dvc_pull", "--configfile", "config/smoke.yaml"], clone)
    assert "nothing to do" in pulled.stdout
    dry = run(dry_run, clone)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-3000:]
    # `make verify`'s own command (make -n prints it; the venv is this one): no training, no generation
    recipe = run(["make", "-s", "-n", "verify", "CONFIG=config/smoke.yaml", f"VENV={venv}"], clone).stdout
    verify_command = recipe.strip().splitlines()[-1]
    assert verify_command.startswith(f"{venv}/bin/snakemake verify "), recipe
    verified = run(["bash", "-c", verify_command], clone)
    assert not re.search(r"^FAIL  ", verified.stdout, flags=re.M), verified.stdout[-3000:]
    assert verified.stdout.count("PASS  ") > 100 and " 0 FAIL " in verified.stdout
    assert "1 of 1 steps" in verified.stderr

    script = clone / "scripts" / "aggregate.py"
    script.write_text(script.read_text() + "\n# changed after the reference run\n")
    refused = run([sys.executable, "-m", "caibase.dvc_pull", "--configfile", "config/smoke.yaml"], clone, ok=False)
    assert refused.returncode == 1 and "does not match dvc.lock" in refused.stderr and "report" in refused.stderr


def dry_run_jobs(workdir, config: dict, tmp_path, *args) -> dict[str, int]:
    """Job counts of a dry run of `config` (written to a file) over an existing run directory."""
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run(
        [snakemake_bin(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir), "--configfile",
         str(path), "-n", "--cores", "1", *args], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return job_counts(result.stdout) if "Job stats:" in result.stdout else {}


def test_a_changed_dpo_beta_reruns_the_dpo_jobs_and_their_descendants_only(smoke_run, tmp_path):
    out, _ = smoke_run
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["dpo"]["beta"] = config["dpo"].get("beta", 0.1) * 2
    counts = dry_run_jobs(out.parents[1], config, tmp_path)
    seeds = len(config["seeds"])
    assert counts["dpo"] == 2 * seeds and counts["dpo_subsample"] >= seeds, counts
    for upstream in ("prepare_model", "sft", "generate_redteam", "critique_revise", "ai_feedback_labels",
                     "slcai_sft", "validate_feedback_model", "validate_judges"):
        assert upstream not in counts, (upstream, counts)
    # eval of the DPO policies (and sweep points) only: base, sft, slcai and instruct_ref keep their records
    n_dpo_policies = counts["generate_eval"] // seeds
    assert counts["judge"] == counts["generate_eval"] and n_dpo_policies < len(config["evaluation"]["conditions"])


def test_a_changed_judge_reruns_every_judge_job_and_nothing_upstream(smoke_run, tmp_path):
    out, _ = smoke_run
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["evaluation"]["score_judge"]["constrained"] = not config["evaluation"]["score_judge"]["constrained"]
    counts = dry_run_jobs(out.parents[1], config, tmp_path)
    judged = [p for p in out.glob("seed*/eval/*/judged.jsonl")]
    assert counts["judge"] == len(judged), counts
    assert not {"generate_eval", "dpo", "sft", "critique_revise"} & set(counts), counts


def test_an_unchanged_config_reruns_nothing_and_the_reasons_are_listed(smoke_run, tmp_path):
    out, _ = smoke_run
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    assert dry_run_jobs(out.parents[1], config, tmp_path) == {}
    config["critique"]["rounds"] += 1
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = subprocess.run(
        [snakemake_bin(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(out.parents[1]), "--configfile",
         str(tmp_path / "changed.yaml"), "--list-changes", "params"],
        capture_output=True, text=True, timeout=300, check=False)
    changed = [line for line in result.stdout.splitlines() if "/slcai/revisions.jsonl" in line]
    assert result.returncode == 0 and len(changed) == len(config["seeds"]), result.stdout[-2000:]


def test_the_default_profile_loads_with_a_plain_snakemake(tmp_path):
    """`snakemake` in the repository (as `make run` and the README start it) reads profiles/default."""
    result = subprocess.run([snakemake_bin(), "-n", "--cores", "1", "--directory", str(tmp_path), "--configfile",
                             "config/smoke.yaml"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Using workflow specific profile profiles/default" in result.stdout + result.stderr


def test_a_truncated_judged_file_fails_aggregate_and_verify_naming_it(smoke_copy):
    path = smoke_copy / "results/smoke/seed1/eval/dpo/judged.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 2]))
    result = verify(smoke_copy)
    assert result.returncode != 0
    expected = f"results/smoke/seed1/eval/dpo/judged.jsonl: {len(lines) // 2} records"
    assert expected in result.stdout, result.stdout[-2000:]
    aggregate = snakemake(smoke_copy, "smoke.yaml", "--cores", "1", "--forcerun", "aggregate", "--allowed-rules",
                          "aggregate", "results/smoke/metrics.json")
    assert aggregate.returncode != 0
    log = (smoke_copy / "results/smoke/logs/aggregate.log").read_text()
    assert f"seed1/eval/dpo/judged.jsonl: {len(lines) // 2} records" in log and f"says {len(lines)} records" in log
