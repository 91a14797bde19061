"""The data path at 1x, 10x and 100x the default sizes: the train/eval split check (`find_contamination`), the
red-team pool build (`hh_rlhf_redteam_records` against the evaluation sets), preference-pair building
(`critique.preference_pairs`) and aggregation (`metrics.summarize` and `paired_table`). The split check and the pool
build are also timed the quadratic way they were done before the index (every pair normalized and compared), and
checked to give the same hits. Writes JSON with the times and each stage's growth exponent (the slope of log time on
log size, least squares).

    python benchmarks/bench_data.py --out benchmarks/results/bench_data.json
    python benchmarks/bench_data.py --scales 1 10 --old-max-scale 1   # a quick look

Sizes (1x): the shipped prompt sets (data/prompts/*.jsonl, 146 train x 149 eval prompts); the HH-RLHF harmless-base
rows (the CAI_DATA_MIRROR copy or the pinned upstream file; synthetic rows when neither is reachable) against the
default config's evaluation sets; 3 seeds x 32 revision records (`prompts.redteam_limit`); the default config's
judged records (6 conditions x 3 seeds x 64 evaluation prompts). At 10x and 100x every set is extended with
synthetic prompts, generated deterministically from `--seed`: openers and words of the shipped prompts plus
pseudo-words, Zipf-distributed, with the shipped prompts' word counts. Runs in one process on one core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, before numpy loads
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from caibase.artifacts import write_json  # noqa: E402
from caibase.critique import preference_pairs  # noqa: E402
from caibase.metrics import paired_table, summarize  # noqa: E402
from caibase.prompts import (  # noqa: E402
    PromptSet,
    find_contamination,
    hh_rlhf_redteam_records,
    load_prompt_set,
    normalize,
    quadratic_clash,
    quadratic_find_contamination,
)
from caibase.provenance import REPO_ROOT, code_version  # noqa: E402

# --- the quadratic check as it was before the index: every pair normalized and compared ---


def quadratic_redteam_records(rows, limit, exclude, threshold=0.7, only=None):
    """The pool build as it was (the quadratic clash test); with `only` (a set of row indices), the test runs for
    those rows alone (a sample for timing: each row's test is independent of the others')."""
    clash = quadratic_clash(exclude, threshold)
    return hh_rlhf_redteam_records(rows, limit, exclude, threshold,
                                   clash_of=lambda i, prompt: clash(i, prompt) if only is None or i in only else None)


# --- synthetic data ---


class SyntheticPrompts:
    """Varied prompt texts from a seed: an opener (the first three words of a shipped prompt), then words drawn
    Zipf-style from the shipped prompts' words and 20,000 pseudo-words, as many as a shipped prompt has."""

    def __init__(self, texts: list[str], seed: int):
        self.rng = random.Random(seed)
        words = [normalize(t).split() for t in texts]
        self.openers = [w[:3] for w in words if len(w) >= 3]
        self.lengths = [len(w) for w in words if len(w) >= 3]
        shipped = list(dict.fromkeys(word for w in words for word in w))
        syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "dre", "quo", "ly", "ber", "sh"]
        pseudo = ["".join(random.Random(i).choices(syllables, k=3)) + str(i % 97) for i in range(20000)]
        vocabulary = shipped + pseudo
        self.vocabulary = vocabulary
        self.cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(vocabulary))))

    def __call__(self) -> str:
        n = self.rng.choice(self.lengths)
        words = self.rng.choice(self.openers) + self.rng.choices(self.vocabulary, cum_weights=self.cumulative,
                                                                  k=max(0, n - 3))
        text = " ".join(words)
        return text[0].upper() + text[1:] + "?"


def scaled_set(prompt_set: PromptSet, scale: int, synth: SyntheticPrompts) -> PromptSet:
    records = list(prompt_set.records)
    split = prompt_set.split
    for i in range(len(records) * (scale - 1)):
        records.append({"id": f"{prompt_set.name}-synthetic-{i:07d}", "category": "synthetic", "split": split,
                        "prompt": synth()})
    return PromptSet(prompt_set.name, prompt_set.path, tuple(records))


def plant_near_copies(sets: list[PromptSet], every: int) -> tuple[list[PromptSet], int]:
    """Every `every`-th synthetic eval prompt replaced by a synthetic train prompt with a word added (a near-copy
    the check must find); returns the sets and the number planted."""
    train = [r["prompt"] for s in sets if s.split == "train" for r in s.records if r["category"] == "synthetic"]
    if not train:
        return sets, 0
    planted, seen, out = 0, 0, []
    for s in sets:
        records = list(s.records)
        if s.split == "eval":
            for i, record in enumerate(records):
                if record["category"] == "synthetic":
                    if seen % every == 0:
                        records[i] = {**record, "prompt": train[planted * 7919 % len(train)] + " please"}
                        planted += 1
                    seen += 1
        out.append(PromptSet(s.name, s.path, tuple(records)))
    return out, planted


def synthetic_row(prompt: str, i: int) -> dict:
    return {"chosen": f"\n\nHuman: {prompt}\n\nAssistant: I can't help with that ({i}).",
            "rejected": f"\n\nHuman: {prompt}\n\nAssistant: Sure, here is how ({i})."}


def revision_records(n: int, rng: random.Random) -> list[dict]:
    records = []
    for i in range(n):
        response = f"Response {i}: " + " ".join(rng.choices(["sure", "here", "is", "how", "you", "do", "it"], k=40))
        kind = rng.random()
        revision = response if kind < 0.05 else f"I can't help with that, but here is something safer ({i})."
        records.append({
            "id": f"p{i}", "prompt": f"Prompt {i}?", "response": response, "final_revision": revision,
            "response_degenerate": "empty" if 0.05 <= kind < 0.08 else None,
            "rounds": [{"revision": revision, "revision_degenerate": "repetition" if 0.08 <= kind < 0.1 else None}],
        })
    return records


EVAL_SIZES = {"jailbreak": 16, "harmful_direct": 16, "benign": 16, "helpful": 8, "style": 8}


def judged_frame(conditions: list[str], seeds: list[int], scale: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for prompt_set, n in EVAL_SIZES.items():
        for p in range(n * scale):
            category = ("benign", "borderline")[p % 2] if prompt_set == "benign" else "c"
            for condition in conditions:
                for seed in seeds:
                    rate = 0.3 + 0.05 * conditions.index(condition)
                    refused = bool(rng.random() < rate)
                    rows.append({
                        "condition": condition, "seed": seed, "prompt_set": prompt_set,
                        "prompt_id": f"{prompt_set}-{p}",
                        "sample": 0, "category": category,
                        "status": "ok" if rng.random() > 0.02 else "judge_failure",
                        "refused": refused if prompt_set in ("jailbreak", "harmful_direct", "benign") else None,
                        "attack_success": (not refused) if prompt_set in ("jailbreak", "harmful_direct") else None,
                        "score": int(rng.integers(1, 6)) if prompt_set in ("helpful", "style") else None,
                        "response_tokens": int(rng.integers(5, 65)),
                    })
    return pd.DataFrame(rows)


# --- measuring ---


def timed(run, repeat: int = 1) -> tuple[float, float, object]:
    """Best wall-clock and process-CPU seconds over `repeat` runs, and the last result."""
    best_wall, best_cpu, result = math.inf, math.inf, None
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        result = run()
        best_wall = min(best_wall, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


def growth_exponent(sizes: list[float], seconds: list[float]) -> float | None:
    """Least-squares slope of log(seconds) on log(size): 1 is linear, 2 quadratic."""
    if len(sizes) < 2:
        return None
    slope, _ = np.polyfit(np.log(sizes), np.log(seconds), 1)
    return float(slope)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--old-max-scale", type=int, default=10,
                        help="time the quadratic split check up to this scale; larger ones are extrapolated")
    parser.add_argument("--old-pool-sample", type=int, default=10,
                        help="above 1x, the quadratic pool build is timed on every n-th row and scaled up by n")
    parser.add_argument("--old-pool-max-scale", type=int, default=10)
    parser.add_argument("--aggregation-max-scale", type=int, default=100)
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap samples (the default config's)")
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--plant-every", type=int, default=100,
                        help="every n-th synthetic eval prompt (and HH-RLHF row) is a near-copy to be found")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "bench_data.json")
    args = parser.parse_args()

    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    shipped = [load_prompt_set(p.stem, p) for p in sorted((REPO_ROOT / "data" / "prompts").glob("*.jsonl"))]
    by_path = {s.path.resolve(): s for s in shipped}
    evaluation = [PromptSet(name, path, by_path[(REPO_ROOT / path).resolve()].records)
                  for name, path in config["prompts"]["eval"].items()]
    synth = SyntheticPrompts([r["prompt"] for s in shipped for r in s.records], args.seed)
    try:
        from caibase.sources import hh_rlhf_harmless_rows, hh_rlhf_harmless_source

        hh_rows, hh_source = hh_rlhf_harmless_rows(), hh_rlhf_harmless_source()
    except Exception as error:  # noqa: BLE001 - offline without a mirror: synthetic rows of the test split's size
        log(f"HH-RLHF rows unavailable ({error}); using 2,312 synthetic rows")
        hh_rows, hh_source = [synthetic_row(synth(), i) for i in range(2312)], "synthetic"

    stages: dict[str, dict] = {}

    def planted_found(hits) -> int:
        return sum(h["eval_prompt"] == h["train_prompt"] + " please" for h in hits)

    # 1. the split check
    points = []
    for scale in args.scales:
        sets, planted = plant_near_copies([scaled_set(s, scale, synth) for s in shipped], args.plant_every)
        n_train = sum(len(s.records) for s in sets if s.split == "train")
        n_eval = sum(len(s.records) for s in sets if s.split == "eval")
        pairs = sum(len(a.records) * len(b.records) for a, b in itertools.combinations(sets, 2) if a.split != b.split)
        wall, cpu, hits = timed(lambda: find_contamination(sets, args.threshold), repeat=3 if scale == 1 else 1)
        point = {"scale": scale, "train_prompts": n_train, "eval_prompts": n_eval, "pairs": pairs,
                 "index_seconds": wall, "index_cpu_seconds": cpu, "hits": len(hits), "planted_near_copies": planted,
                 "planted_found": planted_found(hits)}
        if scale <= args.old_max_scale:
            old_wall, old_cpu, old_hits = timed(lambda: quadratic_find_contamination(sets, args.threshold))
            point |= {"quadratic_seconds": old_wall, "quadratic_cpu_seconds": old_cpu,
                      "identical_hits": old_hits == hits, "speedup": old_wall / wall}
        points.append(point)
        log(f"split check {scale}x: {pairs:,} pairs, index {wall:.2f} s, "
            f"quadratic {point.get('quadratic_seconds', float('nan')):.1f} s, {len(hits)} hits")
    measured = [p for p in points if "quadratic_seconds" in p]
    if measured:
        per_pair = measured[-1]["quadratic_seconds"] / measured[-1]["pairs"]
        for p in points:
            if "quadratic_seconds" not in p:
                p["quadratic_seconds_extrapolated"] = per_pair * p["pairs"]
                p["speedup_vs_extrapolated"] = p["quadratic_seconds_extrapolated"] / p["index_seconds"]
    stages["split_check"] = {
        "what": "find_contamination over the shipped prompt sets (every train set x every eval set), scaled",
        "points": points,
        "growth_exponent_index": growth_exponent([p["pairs"] for p in points], [p["index_seconds"] for p in points]),
        "growth_exponent_index_vs_prompts": growth_exponent([p["train_prompts"] + p["eval_prompts"] for p in points],
                                                            [p["index_seconds"] for p in points]),
        "growth_exponent_quadratic_vs_prompts": growth_exponent(
            [p["train_prompts"] + p["eval_prompts"] for p in measured], [p["quadratic_seconds"] for p in measured]),
        "quadratic_extrapolation": "beyond --old-max-scale: the largest measured point's seconds per pair times the "
                                   "number of pairs",
    }

    # 2. the red-team pool build
    points = []
    for scale in args.scales:
        exclude = [scaled_set(s, scale, synth) for s in evaluation]
        eval_synthetic = [r["prompt"] for s in exclude for r in s.records if r["category"] == "synthetic"]
        rows = hh_rows + [synthetic_row(eval_synthetic[i * 7919 % len(eval_synthetic)] + " please"
                                        if i % args.plant_every == 0 else synth(), i)
                          for i in range(len(hh_rows) * (scale - 1))]
        planted = len(range(0, len(hh_rows) * (scale - 1), args.plant_every))
        n_exclude = sum(len(s.records) for s in exclude)
        wall, cpu, (records, dropped) = timed(
            lambda: hh_rlhf_redteam_records(rows, len(rows), exclude, args.threshold))
        point = {"scale": scale, "rows": len(rows), "eval_prompts": n_exclude, "pool": len(records),
                 "dropped": len(dropped), "planted_near_copies": planted, "index_seconds": wall,
                 "index_cpu_seconds": cpu}
        if scale <= args.old_pool_max_scale:
            step = 1 if scale == 1 else args.old_pool_sample
            only = None if step == 1 else set(range(0, len(rows), step))
            old_wall, old_cpu, (old_records, old_dropped) = timed(
                lambda: quadratic_redteam_records(rows, len(rows), exclude, args.threshold, only=only))
            point |= {"quadratic_seconds": old_wall * step, "quadratic_cpu_seconds": old_cpu * step,
                      "quadratic_row_sample": (f"the test on every {step}th row, the whole run's time x {step} "
                                               "(the key sort's share scaled too: a slight overestimate)")
                      if step > 1 else "all rows",
                      "speedup": old_wall * step / wall}
            if step == 1:
                point["identical_output"] = (old_records, old_dropped) == (records, dropped)
            else:
                sampled = {d["row"] for d in dropped} & only
                point["identical_output_on_sample"] = sampled == {d["row"] for d in old_dropped}
        points.append(point)
        log(f"pool build {scale}x: {len(rows):,} rows x {n_exclude:,} eval prompts, index {wall:.2f} s, "
            f"quadratic {point.get('quadratic_seconds', float('nan')):.1f} s, {len(dropped)} dropped")
    measured = [p for p in points if "quadratic_seconds" in p]
    if measured:
        per_pair = measured[-1]["quadratic_seconds"] / (measured[-1]["rows"] * measured[-1]["eval_prompts"])
        for p in points:
            if "quadratic_seconds" not in p:
                p["quadratic_seconds_extrapolated"] = per_pair * p["rows"] * p["eval_prompts"]
                p["speedup_vs_extrapolated"] = p["quadratic_seconds_extrapolated"] / p["index_seconds"]
    stages["pool_build"] = {
        "what": "hh_rlhf_redteam_records over every HH-RLHF row (limit = all rows) against the default config's "
                f"evaluation sets, scaled; rows: {hh_source} plus synthetic",
        "points": points,
        "growth_exponent_index": growth_exponent([p["rows"] for p in points], [p["index_seconds"] for p in points]),
        "growth_exponent_quadratic": growth_exponent([p["rows"] for p in measured],
                                                     [p["quadratic_seconds"] for p in measured]),
        "quadratic_extrapolation": "beyond --old-pool-max-scale: the largest measured point's seconds per "
                                   "(row x eval prompt) times rows x eval prompts",
    }

    # 3. preference pairs
    points = []
    seeds = config["seeds"]
    for scale in args.scales:
        per_seed = [revision_records(config["prompts"]["redteam_limit"] * scale, random.Random(f"{args.seed}:{s}"))
                    for s in seeds]
        wall, cpu, result = timed(lambda: [preference_pairs(records) for records in per_seed], repeat=5)
        points.append({"scale": scale, "records": sum(map(len, per_seed)), "seconds": wall, "cpu_seconds": cpu,
                       "pairs": sum(len(pairs) for pairs, _ in result)})
        log(f"preference pairs {scale}x: {points[-1]['records']:,} records, {wall * 1000:.1f} ms")
    stages["preference_pairs"] = {
        "what": f"critique.preference_pairs on synthetic revision records, {len(seeds)} seeds x redteam_limit",
        "points": points,
        "growth_exponent": growth_exponent([p["records"] for p in points], [p["seconds"] for p in points]),
    }

    # 4. aggregation
    points, skipped = [], []
    conditions = config["evaluation"]["conditions"]
    for scale in args.scales:
        if scale > args.aggregation_max_scale:
            skipped.append({"scale": scale, "reason": f"above --aggregation-max-scale {args.aggregation_max_scale}"})
            continue
        judged = judged_frame(conditions, seeds, scale, np.random.default_rng(args.seed))
        wall_summary, cpu_summary, _ = timed(lambda: summarize(judged, n_boot=args.n_boot))
        wall_paired, cpu_paired, _ = timed(lambda: paired_table(judged, conditions, n_boot=args.n_boot))
        points.append({"scale": scale, "judged_records": len(judged), "summarize_seconds": wall_summary,
                       "paired_table_seconds": wall_paired, "seconds": wall_summary + wall_paired,
                       "cpu_seconds": cpu_summary + cpu_paired})
        log(f"aggregation {scale}x: {len(judged):,} records, summarize {wall_summary:.1f} s, "
            f"paired_table {wall_paired:.1f} s")
    stages["aggregation"] = {
        "what": f"metrics.summarize and paired_table (n_boot {args.n_boot}) on synthetic judged records: "
                f"{len(conditions)} conditions x {len(seeds)} seeds x {sum(EVAL_SIZES.values())} prompts per 1x",
        "points": points, "skipped": skipped,
        "growth_exponent": growth_exponent([p["judged_records"] for p in points], [p["seconds"] for p in points]),
    }

    split_largest = stages["split_check"]["points"][-1]
    report = {
        "benchmark": "data",
        "scales": args.scales,
        "threshold": args.threshold,
        "seed": args.seed,
        "stages": stages,
        "target": {"split_check_100x_under_s": 60,
                   "split_check_largest_scale": split_largest["scale"],
                   "split_check_largest_seconds": split_largest["index_seconds"],
                   "met": split_largest["scale"] >= 100 and split_largest["index_seconds"] < 60},
        "threads": 1,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15_end": os.getloadavg(),
        "code_version": code_version(),
    }
    write_json(args.out, report)
    print(json.dumps({name: {k: v for k, v in stage.items() if k.startswith("growth")} | {
        "seconds": {p["scale"]: round(p.get("index_seconds", p.get("seconds")), 3) for p in stage["points"]}}
        for name, stage in stages.items()} | {"target": report["target"]}, indent=2))


if __name__ == "__main__":
    main()
