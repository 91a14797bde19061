"""The aggregate rule's statistics on the committed reference run's judged records: `metrics.summarize`,
`metrics.per_seed` and `metrics.paired_table` (two-way bootstrap over seeds x prompts, sign-flip test) as they are
now (every resample's mean at once, one pivot per condition and metric) and as they were before (a Python loop over
the resamples with np.ix_ and np.nanmean, and pivots recomputed per metric and pair; benchmarks/stats_reference.py),
in one process, with a check that both give the same tables (to the last bit, and against the committed
metrics.json). Writes JSON with the times and the machine.

    python benchmarks/bench_stats.py --out benchmarks/results/stats.json

Records: results/<run_name>/seed*/eval/<condition>/judged.jsonl for the default config's seeds and evaluation
conditions (as scripts/aggregate.py reads them), bootstrap samples from the config (2000). Runs on one core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, before numpy loads
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from stats_reference import loop_paired_table, loop_per_seed, loop_summarize  # noqa: E402  (beside this script)

from caibase import metrics  # noqa: E402
from caibase.artifacts import read_records, write_json  # noqa: E402
from caibase.provenance import REPO_ROOT, code_version  # noqa: E402

# --- measuring ---


def timed(run) -> tuple[float, float, object]:
    """Wall-clock and process-CPU seconds of one run, and its result."""
    start, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - start, time.process_time() - cpu, result


def clear_caches() -> None:
    """The new code's per-process caches (seeded index matrices, sign assignments): a cold start, as in a fresh
    aggregate job."""
    for name in ("_seeded_resamples", "_sign_assignments"):
        cached = getattr(metrics, name, None)
        if cached is not None:
            cached.cache_clear()


def compare(old: pd.DataFrame, new: pd.DataFrame) -> dict:
    """Whether two tables are identical (same columns, rows, values; NaN equal to NaN), and the largest absolute
    difference of their numeric columns."""
    same_shape = list(old.columns) == list(new.columns) and old.shape == new.shape
    largest = 0.0
    if same_shape:
        for column in old.columns:
            a, b = old[column], new[column]
            if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
                a, b = a.to_numpy(float), b.to_numpy(float)
                both_nan = np.isnan(a) & np.isnan(b)
                if (np.isnan(a) != np.isnan(b)).any():
                    largest = math.inf
                elif (~both_nan).any():
                    largest = max(largest, float(np.max(np.abs(a[~both_nan] - b[~both_nan]))))
    identical = same_shape and all(old[c].equals(new[c]) for c in old.columns)
    return {"identical": bool(identical), "max_abs_difference": largest if same_shape else None}


def against_committed(table: pd.DataFrame, committed: list[dict], keys: list[str]) -> dict:
    """Largest absolute difference between the table's numeric columns and the committed metrics.json rows."""
    reference = pd.DataFrame(committed).set_index(keys)
    mine = table.set_index(keys)
    columns = [c for c in mine.columns if c in reference.columns and pd.api.types.is_numeric_dtype(mine[c])
               and mine[c].dtype != bool]
    reference = reference.loc[mine.index, columns].astype(float).to_numpy()
    values = mine[columns].astype(float).to_numpy()
    mismatch_nan = int((np.isnan(reference) != np.isnan(values)).sum())
    finite = ~np.isnan(reference) & ~np.isnan(values)
    return {"rows": len(mine), "rows_committed": len(committed), "columns": columns,
            "max_abs_difference": float(np.max(np.abs(reference[finite] - values[finite]))) if finite.any() else 0.0,
            "nan_mismatches": mismatch_nan}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "config" / "config.yaml")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the new code (the first with cold caches)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "stats.json")
    args = parser.parse_args()

    load_start = os.getloadavg()
    config = yaml.safe_load(args.config.read_text())
    conditions, seeds = config["evaluation"]["conditions"], config["seeds"]
    n_boot = config["evaluation"]["bootstrap_samples"]
    run_dir = REPO_ROOT / "results" / config["run_name"]
    paths = [run_dir / f"seed{seed}" / "eval" / condition / "judged.jsonl"
             for seed in seeds for condition in conditions]
    judged = pd.DataFrame([record for path in paths for record in read_records(path)])
    judged = judged.rename(columns={"id": "prompt_id"})
    log(f"{len(judged)} judged records ({len(conditions)} conditions x {len(seeds)} seeds), n_boot {n_boot}")

    stages = {  # name: (before, after)
        "summarize": (lambda j: loop_summarize(j, n_boot=n_boot), lambda j: metrics.summarize(j, n_boot=n_boot)),
        "per_seed": (loop_per_seed, metrics.per_seed),
        "paired_table": (lambda j: loop_paired_table(j, conditions, n_boot=n_boot),
                         lambda j: metrics.paired_table(j, conditions, n_boot=n_boot)),
    }

    results, outputs = {}, {}
    for name, (old, new) in stages.items():
        old_wall, old_cpu, old_out = timed(lambda: old(judged))
        log(f"{name} before: {old_wall:.2f} s")
        runs = []
        clear_caches()
        for i in range(args.repeat):
            wall, cpu, new_out = timed(lambda: new(judged))
            runs.append({"seconds": wall, "cpu_seconds": cpu, "caches": "cold" if i == 0 else "warm"})
        log(f"{name} after: {runs[0]['seconds']:.3f} s cold, {min(r['seconds'] for r in runs):.3f} s best")
        outputs[name] = new_out
        results[name] = {"before_seconds": old_wall, "before_cpu_seconds": old_cpu,
                         "after_seconds_cold": runs[0]["seconds"], "after_cpu_seconds_cold": runs[0]["cpu_seconds"],
                         "after_seconds_best": min(r["seconds"] for r in runs), "after_runs": runs,
                         "speedup_cold": old_wall / runs[0]["seconds"], "rows": len(new_out),
                         "same_output": compare(old_out, new_out)}

    committed = json.loads((run_dir / "metrics.json").read_text())
    checks = {"summarize_vs_committed_metrics_json": against_committed(outputs["summarize"], committed["summary"],
                                                                       ["condition", "metric"]),
              "paired_table_vs_committed_metrics_json": against_committed(
                  outputs["paired_table"], committed["paired_differences"], ["metric", "treatment", "control"])}
    # the aggregate rule runs summarize, per_seed and paired_table once each, in a fresh process (cold caches)
    before = sum(r["before_seconds"] for r in results.values())
    after = sum(r["after_seconds_cold"] for r in results.values())
    report = {
        "benchmark": "stats",
        "what": "the aggregate rule's statistics (metrics.summarize, per_seed, paired_table) on the committed "
                f"reference run's judged records, n_boot {n_boot}: before = the per-resample loop (np.ix_ + "
                "np.nanmean per resample, pivots recomputed per metric and pair), after = every resample at once "
                "(the same index draws), one pivot per (condition, metric) per call",
        "run": config["run_name"],
        "judged_records": len(judged),
        "conditions": conditions,
        "seeds": seeds,
        "n_boot": n_boot,
        "stages": results,
        "aggregate_statistics": {"before_seconds": before, "after_seconds": after, "speedup": before / after,
                                 "target_under_s": 10, "met": after < 10},
        "all_outputs_identical": all(r["same_output"]["identical"] for r in results.values()),
        "checks": checks,
        "threads": 1,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15_start": load_start,
        "load_average_1_5_15_end": os.getloadavg(),
        "code_version": code_version(),
    }
    write_json(args.out, report)
    print(json.dumps({"aggregate_statistics": report["aggregate_statistics"],
                      "all_outputs_identical": report["all_outputs_identical"],
                      "stages": {name: {k: r[k] for k in ("before_seconds", "after_seconds_cold", "after_seconds_best",
                                                          "same_output")} for name, r in results.items()},
                      "checks": {k: {"max_abs_difference": v["max_abs_difference"],
                                     "nan_mismatches": v["nan_mismatches"]} for k, v in checks.items()}}, indent=2))


if __name__ == "__main__":
    main()
