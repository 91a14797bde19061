"""The cost table: per-stage jobs, job time, CPU time and peak memory from Snakemake's benchmark TSVs, published and
recomputed by verify like every other number, and written as a table of the report."""

import math
import re
import subprocess

import pandas as pd
import pytest

from caibase import published as pub
from caibase.cost import stage_costs
from caibase.layout import benchmark_stage
from caibase.tables import write_tables

from conftest import REPO, snakemake_bin

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
JOBS = {  # file under benchmarks/ -> (s, max_rss, cpu_time), as benchmark_file() names them
    "prepare_model.tsv": (21.67, "588.68", "15.21"),
    "sft/seed1.tsv": (120.0, "900.5", "240.0"),
    "sft/seed2.tsv": (60.0, "1200.25", "150.0"),
    "judge/seed1/dpo.tsv": (3.0, "NA", "NA"),  # ended before Snakemake sampled it
}


@pytest.fixture
def benchmarks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = []
    for name, (seconds, rss, cpu) in JOBS.items():
        path = tmp_path / "results" / "run" / "benchmarks" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER + f"{seconds}\t0:00:{int(seconds) % 60:02d}\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")
        paths.append(str(path.relative_to(tmp_path)))
    return tmp_path, paths


def test_stage_is_the_first_part_under_benchmarks():
    assert benchmark_stage("results/r/benchmarks/prepare_model.tsv") == "prepare_model"
    assert benchmark_stage("results/r/benchmarks/generate_eval/seed2/dpo_aif_n4.tsv") == "generate_eval"
    with pytest.raises(ValueError):
        benchmark_stage("results/r/logs/sft.tsv")


def test_per_stage_summary(benchmarks):
    _, paths = benchmarks
    table = stage_costs(paths).set_index("stage")
    assert list(table.index) == ["judge", "prepare_model", "sft", "total"]
    assert table.loc["sft"].tolist() == pytest.approx([2, 3.0, 6.5, 1200.25])
    assert table.loc["judge", "jobs"] == 1 and math.isnan(table.loc["judge", "cpu_min"])  # NA: not sampled
    assert table.loc["total"].tolist() == pytest.approx([4, (21.67 + 183) / 60, (15.21 + 390) / 60, 1200.25])


def test_published_cost_recomputes_and_a_changed_benchmark_fails(benchmarks):
    root, paths = benchmarks
    numbers = pub.cost_numbers(paths)
    items = {item["key"]: item for item in numbers}
    assert items["cost/sft/jobs"]["display"] == "2" and items["cost/sft/max_rss_mb"]["display"] == "1200"
    assert items["cost/sft/wall_min"]["sources"] == sorted(p for p in paths if "/sft/" in p)
    assert items["cost/total/jobs"]["n_records"] == len(paths)
    published = {"numbers": numbers}
    assert all(r["status"] == "PASS" for r in pub.verify(published, root))

    changed = root / "results/run/benchmarks/sft/seed2.tsv"
    changed.write_text(changed.read_text().replace("\n60.0\t", "\n90.0\t"))
    failed = {r["key"] for r in pub.verify(published, root) if r["status"] != "PASS"}
    assert failed == {"cost/sft/wall_min", "cost/total/wall_min"}
    changed.unlink()
    failed = {r["key"] for r in pub.verify(published, root) if r["status"] != "PASS"}
    assert failed == {k for k in items if k.startswith(("cost/sft/", "cost/total/"))}


def test_a_stage_entry_reads_only_its_own_stage(benchmarks):
    _, paths = benchmarks
    with pytest.raises(ValueError, match="other stages"):
        pub.entry("cost/sft/jobs", "stage_cost", {"stage": "sft", "statistic": "jobs"}, paths)


def test_write_tables_writes_the_cost_table(benchmarks, tmp_path):
    _, paths = benchmarks
    published = {"meta": {"samples_per_prompt": 1}, "numbers": pub.cost_numbers(paths)}
    assert write_tables(published, tmp_path / "tables", None) == ["cost"]
    csv = pd.read_csv(tmp_path / "tables" / "cost.csv")
    assert csv.stage.tolist() == ["judge", "prepare_model", "sft", "total"]
    assert csv.columns.tolist() == ["stage", "jobs", "wall_min", "cpu_min", "max_rss_mb"]
    tex = (tmp_path / "tables" / "cost.tex").read_text()
    assert r"prepare\_model & 1 & 0.36 & 0.25 & 589 \\" in tex and "n/a" in tex


def test_publish_numbers_reads_the_benchmark_of_every_job_of_the_run(tmp_path):
    """Its benchmark inputs (upstream_benchmarks in common.smk) are exactly the benchmark files of the smoke run's
    jobs: no job is added to the DAG for them, none is left out (no job after publish_numbers has one)."""
    result = subprocess.run(
        [snakemake_bin(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--configfile",
         str(REPO / "config" / "smoke.yaml"), "-n", "--cores", "1"],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    written = set(re.findall(r"^\s+benchmark: (\S+)$", result.stdout, flags=re.M))
    publish = next(job for job in result.stdout.split("\nrule ") if job.startswith("publish_numbers:"))
    inputs = re.search(r"^\s+input: (.+)$", publish, flags=re.M).group(1).split(", ")
    assert len(written) > 10 and {path for path in inputs if "/benchmarks/" in path} == written
