"""Scoring throughput: the shared-prefix forward (`caibase.forward.forward_shared`) against running every prompt in
full, for AI-feedback option log-probs (`caibase.feedback.option_logprobs`) and the hf judge (`HFJudge.judge_many`).
Writes JSON; the last line printed is `speedup_feedback=<full CPU-s / shared CPU-s> speedup_judge=<...>`.

    python benchmarks/bench_scoring.py --out benchmarks/results/scoring.json

Feedback: `--n-comparisons` comparisons from the reference run's responses (SFT against base on the same prompt),
each asked in both orders after the few-shot prefix, with config/config.yaml's `feedback.fewshot_examples` and
`batch_size` and the repo's constitution. Judge: `--n-items` SFT responses judged for helpfulness by the run's score
judge (`evaluation.score_judge`). Both paths run in one process, interleaved per round (full, shared, full,
shared), each timed in wall and process CPU time with the load average before and after; speedups use CPU time.
The numeric check: max |difference| of the option log-probs, of P(A) and of the judge's label probabilities (rounded
to 6 digits in verdicts), and how many labels (P > 0.5, the judge's label) differ between the paths. `threshold`:
one batch of 8 random-token rows (rests of 200-235 tokens) sharing 8, 16 or 32 tokens, full against shared, where
`caibase.forward.MIN_SHARED` comes from.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import time
from pathlib import Path

import torch
import yaml

from caibase.artifacts import read_jsonl, write_json
from caibase.constitution import load_constitution
from caibase.feedback import comparison_prompt, fewshot_prefix, option_logprobs, prob_first
from caibase.forward import MIN_SHARED, common_prefix, forward_shared
from caibase.judges import HFJudge
from caibase.models import encode_prompt, load_model, load_tokenizer
from caibase.provenance import REPO_ROOT, code_version

RUN = REPO_ROOT / "results" / "embedded-cpu"


def measure(run) -> tuple[dict, object]:
    load_before = os.getloadavg()
    start, cpu_start = time.perf_counter(), time.process_time()
    out = run()
    return {"seconds": time.perf_counter() - start, "process_cpu_seconds": time.process_time() - cpu_start,
            "load_average_1_5_15_before": list(load_before),
            "load_average_1_5_15_after": list(os.getloadavg())}, out


def interleaved(rounds: int, full, shared) -> dict:
    """Both paths `rounds` times, interleaved (full first in even rounds, shared first in odd ones); CPU seconds
    pooled, the first round's outputs kept."""
    timings: dict[str, list[dict]] = {"full": [], "shared_prefix": []}
    outputs = {}
    paths = [("full", full), ("shared_prefix", shared)]
    for round_index in range(rounds):
        for name, run in paths[:: 1 if round_index % 2 == 0 else -1]:
            result, out = measure(run)
            timings[name].append(result)
            outputs.setdefault(name, out)
            print(f"round {round_index} {name}: {result['process_cpu_seconds']:.1f} cpu-s", flush=True)
    cpu = {name: sum(r["process_cpu_seconds"] for r in runs) for name, runs in timings.items()}
    wall = {name: sum(r["seconds"] for r in runs) for name, runs in timings.items()}
    return {"process_cpu_seconds": cpu, "seconds": wall, "rounds": timings,
            "speedup_cpu": cpu["full"] / cpu["shared_prefix"], "speedup_wall": wall["full"] / wall["shared_prefix"],
            "outputs": outputs}


def lengths(tokenizer, prompts) -> dict:
    ids = [encode_prompt(tokenizer, p) for p in prompts]
    n = [len(i) for i in ids]
    return {"prompt_tokens_min_mean_max": [min(n), sum(n) / len(n), max(n)], "common_prefix_tokens": common_prefix(ids)}


def feedback_bench(args, model, tokenizer, cfg) -> dict:
    sft = {r["id"]: r for r in read_jsonl(args.run / "seed1/eval/sft/responses.jsonl")}
    base = {r["id"]: r for r in read_jsonl(args.run / "seed1/eval/base/responses.jsonl")}
    ids = [i for i in sft if i in base][: args.n_comparisons]
    constitution = load_constitution("constitution", REPO_ROOT)
    prefix = fewshot_prefix(constitution, cfg["fewshot_examples"])
    prompts = []
    for i in ids:
        principle = constitution.sample_comparison_principle(random.Random(f"0:{i}:comparison")).text
        conversation, a, b = f"Human: {sft[i]['prompt'].strip()}", sft[i]["response"], base[i]["response"]
        prompts += [prefix + comparison_prompt(conversation, principle, a, b),
                    prefix + comparison_prompt(conversation, principle, b, a)]
    batch_size = cfg["batch_size"]
    result = interleaved(args.rounds,
                         lambda: option_logprobs(model, tokenizer, prompts, batch_size, shared_prefix=False),
                         lambda: option_logprobs(model, tokenizer, prompts, batch_size))
    outputs = result.pop("outputs")
    full, shared = outputs["full"], outputs["shared_prefix"]
    p_full, p_shared = [prob_first(*lp) for lp in full], [prob_first(*lp) for lp in shared]
    avg = [((p[2 * k] + 1 - p[2 * k + 1]) / 2 for k in range(len(ids))) for p in (p_full, p_shared)]
    return {"n_comparisons": len(ids), "n_prompts": len(prompts), "fewshot_examples": cfg["fewshot_examples"],
            "batch_size": batch_size, **lengths(tokenizer, prompts), **result,
            "max_abs_diff_logprob": max(abs(x - y) for f, s in zip(full, shared) for x, y in zip(f, s)),
            "max_abs_diff_p_a": max(abs(x - y) for x, y in zip(p_full, p_shared)),
            "p_a_labels_flipped": sum((x > 0.5) != (y > 0.5) for x, y in zip(p_full, p_shared)),
            "p_first_labels_flipped": sum((x > 0.5) != (y > 0.5) for x, y in zip(*avg))}


def judge_bench(args, cfg) -> dict:
    judge = HFJudge(cfg, args.run / "model")
    items = [{"prompt": r["prompt"], "response": r["response"]}
             for r in read_jsonl(args.run / "seed1/eval/sft/responses.jsonl") if r["response"].strip()]
    items = items[: args.n_items]

    def run(shared: bool):
        judge.shared_prefix = shared
        return judge.judge_many(items, args.task)

    result = interleaved(args.rounds, lambda: run(False), lambda: run(True))
    outputs = result.pop("outputs")
    full, shared = outputs["full"], outputs["shared_prefix"]
    return {"n_items": len(items), "task": args.task, "batch_size": judge.batch_size, "judge": judge.name,
            **lengths(judge.tokenizer, [judge.prompt_text(args.task, it) for it in items]), **result,
            "max_abs_diff_label_probs": max(abs(v["label_probs"][k] - w["label_probs"][k])
                                            for v, w in zip(full, shared) for k in v["label_probs"]),
            "labels_changed": sum((v["label"], v["score"]) != (w["label"], w["score"]) for v, w in zip(full, shared))}


def threshold_bench(model, shared_tokens=(8, 16, 32), repeats: int = 3) -> dict:
    rng = random.Random(0)
    results = {}
    for n in shared_tokens:
        prefix = [1] + [rng.randrange(100, 40000) for _ in range(n - 1)]
        rows = [prefix + [rng.randrange(100, 40000) for _ in range(200 + 5 * i)] for i in range(8)]

        def run(min_shared, rows=rows):
            for _ in range(repeats):
                forward_shared(model, rows, 0, min_shared=min_shared)

        result = interleaved(2, lambda: run(math.inf), lambda: run(1))
        result.pop("outputs")
        results[f"shared_{n}_tokens"] = result
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=RUN, help="a finished run: its model and seed1 responses")
    parser.add_argument("--n-comparisons", type=int, default=32, help="each scored in both orders")
    parser.add_argument("--n-items", type=int, default=32)
    parser.add_argument("--task", default="helpfulness")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of full and shared-prefix")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--note", default="", help="recorded in the JSON (e.g. what else ran on the machine)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "scoring.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    config = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    tokenizer, model = load_tokenizer(args.run / "model"), load_model(args.run / "model")
    load_at_start = list(os.getloadavg())
    feedback = feedback_bench(args, model, tokenizer, config["feedback"])
    judge = judge_bench(args, config["evaluation"]["score_judge"])
    threshold = threshold_bench(model)
    report = {
        "benchmark": "scoring",
        "model_dir": str(args.run / "model"),
        "min_shared_tokens": MIN_SHARED,
        "threads": args.threads,
        "rounds": args.rounds,
        "note": args.note,
        "load_average_1_5_15_at_start": load_at_start,
        "load_average_1_5_15_at_end": list(os.getloadavg()),
        "feedback": feedback,
        "judge": judge,
        "threshold": threshold,
        "torch": torch.__version__,
        "dtype": str(next(model.parameters()).dtype),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "code_version": code_version(),
    }
    write_json(args.out, report)
    summary = {name: {k: part[k] for k in part if k.startswith(("speedup", "max_abs", "labels", "p_a_", "p_first_"))}
               for name, part in (("feedback", feedback), ("judge", judge))}
    summary["threshold_speedup_cpu"] = {k: v["speedup_cpu"] for k, v in threshold.items()}
    print(json.dumps(summary, indent=2))
    print(f"speedup_feedback={feedback['speedup_cpu']:.3f} speedup_judge={judge['speedup_cpu']:.3f}")


if __name__ == "__main__":
    main()
