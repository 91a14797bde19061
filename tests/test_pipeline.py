"""The whole DAG for real: `snakemake --cores 2` on config/smoke.yaml (tiny random model), plus dry runs and lint."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, load_config, snakemake_bin


def snakemake(workdir, config_name, *args, timeout=900):
    return subprocess.run(
        [snakemake_bin(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "--configfile", str(REPO / "config" / config_name), *args],
        capture_output=True, text=True, timeout=timeout,
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
    for rule in ("prepare_model", "build_redteam_set", "check_prompt_splits", "aggregate"):
        assert counts[rule] == 1, rule
    for rule in ("sft", "critique_revise", "preference_pairs", "slcai_sft"):
        assert counts[rule] == seeds, rule
    aif = "dpo_aif" in config["evaluation"]["conditions"]
    assert counts["dpo"] == seeds * (1 + aif) and counts.get("ai_feedback_labels", 0) == seeds * aif
    assert counts.get("validate_feedback_model", 0) == int(config["feedback"]["validate"])
    assert counts["generate_redteam"] == seeds
    assert counts["generate_eval"] == counts["judge"] == seeds * conditions


@pytest.mark.parametrize("config_name", ["config.yaml", "smoke.yaml", "paper.yaml"])
def test_lint_is_clean(config_name):
    result = subprocess.run([snakemake_bin(), "--lint", "--configfile", f"config/{config_name}"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    result = snakemake(workdir, "smoke.yaml", "--cores", "2")
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
        assert len(aif_pairs) == len(labels) and all(p["p_chosen"] >= 0.5 for p in aif_pairs)

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

        for condition in config["evaluation"]["conditions"]:
            judged = read_jsonl(seed_dir / "eval" / condition / "judged.jsonl")
            sets = [r["prompt_set"] for r in judged]
            assert {name: sets.count(name) for name in set(sets)} == {
                name: config["prompts"]["eval_limit"] for name in config["prompts"]["eval"]}
            for record in judged:
                assert record["condition"] == condition and record["seed"] == seed
                assert record["status"] == "ok" and record["judge_is_proxy"] is True
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


def test_smoke_run_summary_table(smoke_run):
    out, config = smoke_run
    summary = pd.read_csv(out / "tables" / "summary_by_condition.csv")
    assert set(summary.condition) == set(config["evaluation"]["conditions"])
    assert set(summary.metric) == {"asr_jailbreak", "asr_direct", "over_refusal"}
    assert (summary.n_seeds == len(config["seeds"])).all()
    assert summary["mean"].between(0, 1).all()
    assert (summary.ci95_low <= summary["mean"] + 1e-9).all() and (summary["mean"] <= summary.ci95_high + 1e-9).all()
    assert (summary.model_kind == "base").all()
    per_seed = pd.read_csv(out / "tables" / "per_seed.csv")
    assert len(per_seed) == len(config["seeds"]) * len(summary)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["judge_is_proxy"] is True and metrics["model"]["kind"] == "base"
    assert len(metrics["summary"]) == len(summary)
    assert metrics["feedback_validation"]["hhh"]["n"] == 100
    paired = pd.read_csv(out / "tables" / "paired_differences.csv")
    assert {("dpo", "sft"), ("dpo_aif", "sft"), ("slcai", "base")} <= set(zip(paired.treatment, paired.control))
    assert paired.p_permutation.between(0, 1).all() and (paired.n_seeds == len(config["seeds"])).all()


def test_smoke_run_is_complete_and_nothing_left_to_do(smoke_run):
    out, _ = smoke_run
    workdir = out.parents[1]
    result = snakemake(workdir, "smoke.yaml", "-n", "--cores", "1")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr
    assert not list(workdir.rglob(".*.tmp")), "temporary files left behind"


def test_contaminated_eval_set_fails_the_run(tmp_path):
    config = load_config("smoke.yaml")
    train = [json.loads(line) for line in (REPO / config["prompts"]["redteam_train"]).read_text().splitlines()]
    leaked = tmp_path / "leaky_eval.jsonl"
    leaked.write_text(json.dumps({"id": "leak-1", "category": "direct", "split": "eval",
                                  "prompt": train[5]["prompt"]}) + "\n")
    config["prompts"]["eval"] = {"jailbreak": str(leaked)}
    config_file = tmp_path / "leaky.yaml"
    import yaml  # noqa: PLC0415

    config_file.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [snakemake_bin(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
         str(config_file), "--cores", "1", "results/smoke/checks/prompt_splits.json"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    log = (tmp_path / "results" / "smoke" / "logs" / "check_prompt_splits.log").read_text()
    assert f"redteam_train/{train[5]['id']}" in log and "jailbreak/leak-1" in log
    assert not (tmp_path / "results" / "smoke" / "checks" / "prompt_splits.json").exists()


def test_same_seed_reruns_byte_identical_and_seeds_differ(smoke_run, tmp_path):
    """A second run of the smoke config in a fresh directory gives the same bytes for pairs, judged records and
    metrics; the two seeds of one run give different pairs."""
    out, config = smoke_run
    result = snakemake(tmp_path, "smoke.yaml", "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    again = tmp_path / "results" / "smoke"
    compared = ["metrics.json", "tables/summary_by_condition.csv", "tables/per_seed.csv"]
    for seed in config["seeds"]:
        compared += [f"seed{seed}/pairs/revision.jsonl", f"seed{seed}/pairs/ai-feedback.jsonl",
                     f"seed{seed}/slcai/revisions.jsonl"]
        compared += [f"seed{seed}/eval/{c}/judged.jsonl" for c in config["evaluation"]["conditions"]]
    for name in compared:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
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
    resumed = subprocess.run(cmd + ["--rerun-incomplete"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    names = ["metrics.json"] + [f"seed{s}/{name}" for s in config["seeds"] for name in (
        "slcai/responses.jsonl", "slcai/revisions.jsonl", "pairs/revision.jsonl", "pairs/ai-feedback.jsonl")]
    for name in names:
        assert (results / name).read_bytes() == (out / name).read_bytes(), name
    assert not list(results.rglob("*.partial")) and not list(results.rglob("*.shards"))


def test_reviewer_path_push_clone_pull_has_nothing_to_do(smoke_run, tmp_path):
    """The reviewers' path on the smoke run, against a real local DVC remote: record the run (`dvc commit`),
    `dvc push`, clone the repository elsewhere, `dvc pull`; DVC does not restore mtimes, so Snakemake would rerun
    jobs; `python -m caibase.dvc_pull` (what `make pull` runs) checks dvc.lock and touches, and then Snakemake has
    nothing to do. A clone whose code differs from dvc.lock is refused."""
    out, _ = smoke_run
    dvc = str(Path(sys.executable).parent / "dvc")
    origin, remote, clone = tmp_path / "origin", tmp_path / "remote", tmp_path / "clone"

    def run(cmd, cwd, ok=True):
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
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
    dvc_yaml.write_text(dvc_yaml.read_text().replace("config/config.yaml", "config/smoke.yaml"))
    git("init", "-q", cwd=origin)
    git("add", "-A", cwd=origin)
    git("commit", "-q", "-m", "code", cwd=origin)

    shutil.copytree(out, origin / "results" / "smoke")  # the smoke run, as `make run` would leave it
    run([dvc, "remote", "modify", "--local", "localdir", "url", str(remote)], origin)
    run([dvc, "commit", "--force"], origin)
    assert run([dvc, "status", "--json"], origin).stdout.strip() in ("{}", "")
    run([dvc, "push"], origin)
    git("add", "dvc.lock", "results/smoke/metrics.json", "results/smoke/feedback/validation/summary.json", cwd=origin)
    git("commit", "-q", "-m", "reference run", cwd=origin)

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
    # MERGE(#6): `make verify` runs here, in the clone, and must pass without any training or generation.

    script = clone / "scripts" / "aggregate.py"
    script.write_text(script.read_text() + "\n# changed after the reference run\n")
    refused = run([sys.executable, "-m", "caibase.dvc_pull", "--configfile", "config/smoke.yaml"], clone, ok=False)
    assert refused.returncode == 1 and "does not match dvc.lock" in refused.stderr and "report" in refused.stderr
