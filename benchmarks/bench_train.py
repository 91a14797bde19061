"""Training cost on the embedded model: steps/s and peak resident memory of SFT and DPO (same LoRA and sequences),
each in a fresh process so peak memory is its own. A DPO pair is two sequences, so DPO runs `batch_size / 2` pairs
per forward pass with 2 accumulation steps: the same sequences per forward pass as SFT and `batch_size` pairs per
optimizer step. Target: DPO peak memory at most 1.3x SFT's, which needs the reference to be the policy with its
adapter disabled (no second model) and its log-probs computed up front. Writes JSON.

    python benchmarks/bench_train.py --out benchmarks/results/train.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from caibase.artifacts import write_json
from caibase.provenance import REPO_ROOT, code_version

LORA = {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}


def child(mode: str, model_dir: Path, steps: int, batch_size: int, threads: int) -> None:
    """Runs in a fresh interpreter: train `steps` steps, then print the time and this process's peak RSS."""
    import torch

    from caibase.critique import dialogue_prompt
    from caibase.models import load_model, load_tokenizer
    from caibase.prompts import load_prompt_set
    from caibase.training import train_dpo, train_sft

    torch.set_num_threads(threads)
    tokenizer, model = load_tokenizer(model_dir), load_model(model_dir)
    demos = load_prompt_set("helpful_sft", REPO_ROOT / "data/prompts/helpful_sft.jsonl", require=("response",)).records
    cfg = {"max_steps": steps, "learning_rate": 1e-4, "batch_size": batch_size, "max_length": 384, "beta": 0.1,
           "lora": LORA}
    if mode == "dpo":
        cfg |= {"batch_size": max(1, batch_size // 2), "gradient_accumulation_steps": 2}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        start = time.perf_counter()
        if mode == "sft":
            records = [{"prompt": dialogue_prompt(d["prompt"]), "completion": " " + d["response"]} for d in demos]
            train_sft(model, tokenizer, records, cfg, 0, work / "a", work / "h.csv", work / "w")
        else:  # the same demonstrations as chosen, a short evasive reply as rejected
            pairs = [{"prompt": dialogue_prompt(d["prompt"]), "chosen": " " + d["response"],
                      "rejected": " I don't know."} for d in demos]
            train_dpo(model, tokenizer, pairs, cfg, 0, work / "a", work / "h.csv", work / "w")
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def measure(mode: str, args) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--model-dir", str(args.model_dir), "--steps", str(args.steps),
         "--batch-size", str(args.batch_size), "--threads", str(args.threads)],
        capture_output=True, text=True, check=True,
    )
    child_report = json.loads(result.stdout.strip().splitlines()[-1])
    seconds = child_report["seconds"]
    return {"steps": args.steps, "seconds": seconds, "steps_per_s": args.steps / seconds,
            "peak_rss_mib": child_report["peak_rss_kib"] / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=REPO_ROOT / "results" / "embedded-cpu" / "model")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "train.json")
    parser.add_argument("--child", choices=["sft", "dpo"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model_dir, args.steps, args.batch_size, args.threads)
        return
    if not (args.model_dir / "model_info.json").is_file():
        from caibase.models import prepare_model

        prepare_model({"source": "embedded", "kind": "instruct"}, args.model_dir)
    sft = measure("sft", args)
    dpo = measure("dpo", args)
    report = {
        "benchmark": "train", "model_dir": str(args.model_dir), "batch_size": args.batch_size, "lora": LORA,
        "threads": args.threads, "sft": sft, "dpo": dpo,
        "dpo_over_sft_peak_memory": dpo["peak_rss_mib"] / sft["peak_rss_mib"], "target_max_ratio": 1.3,
        "machine": platform.machine(), "code_version": code_version(),
    }
    write_json(args.out, report)
    print(json.dumps({k: report[k] for k in ("sft", "dpo", "dpo_over_sft_peak_memory")}, indent=2))


if __name__ == "__main__":
    main()
