"""What a run cost, from the TSV that Snakemake's `benchmark:` writes per job (columns s, h:m:s, max_rss, max_vms,
max_uss, max_pss, io_in, io_out, mean_load, cpu_time; "NA" where the job ended before it was sampled).

A job's file is `results/<run>/benchmarks/<stage>.tsv` or `results/<run>/benchmarks/<stage>/<job...>.tsv`
(caibase.layout: benchmark_path, benchmark_stage): the stage is the rule's name. Per stage: the number of jobs, the
wall and CPU time summed over its jobs, and the largest resident memory of any one job. Summed wall time is job time,
not the run's elapsed time: jobs run side by side.
"""

from __future__ import annotations

import pandas as pd

from caibase.layout import benchmark_stage

TOTAL = "total"  # the row over every stage
STATISTICS = ("jobs", "wall_min", "cpu_min", "max_rss_mb")


def read_job(path: str) -> pd.Series:
    """One job's benchmark: its mean over the file's rows (one row, or one per `repeat()` of the benchmark)."""
    frame = pd.read_csv(path, sep="\t", na_values=["NA", "-"])
    return frame[["s", "cpu_time", "max_rss"]].apply(pd.to_numeric, errors="coerce").mean()


def summarize_jobs(jobs: pd.DataFrame) -> dict[str, float]:
    """Jobs, wall and CPU minutes summed over jobs, peak resident memory (MB) of one job; NaN where no job of the
    stage was sampled."""
    return {"jobs": float(len(jobs)), "wall_min": jobs.s.sum(min_count=1) / 60,
            "cpu_min": jobs.cpu_time.sum(min_count=1) / 60, "max_rss_mb": jobs.max_rss.max()}


def stage_costs(paths: list[str]) -> pd.DataFrame:
    """One row per stage (sorted by name), then the `total` row over every job: stage, jobs, wall_min, cpu_min,
    max_rss_mb."""
    jobs = pd.DataFrame([read_job(path) for path in paths], columns=["s", "cpu_time", "max_rss"])
    jobs["stage"] = [benchmark_stage(path) for path in paths]
    rows = [{"stage": stage, **summarize_jobs(group)} for stage, group in jobs.groupby("stage", sort=True)]
    return pd.DataFrame(rows + [{"stage": TOTAL, **summarize_jobs(jobs)}], columns=["stage", *STATISTICS])
