"""Generation throughput: a naive one-prompt-at-a-time `model.generate` loop vs the caibase engine (batched,
left-padded, length-bucketed, KV cache), on the same prompts and sampling settings. Writes JSON.

    python benchmarks/bench_generation.py --out benchmarks/results/generation.json
    python benchmarks/bench_generation.py --model-dir results/embedded-cpu/model --n-prompts 64 --batch-sizes 32 64

The machine's load average is recorded before and after each measurement: on a shared machine the absolute
tokens/s move with other work, so compare the ratio to the baseline measured in the same run. Tokens per
process CPU-second are recorded too; they move less with other work than wall-clock tokens/s do.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from caibase.artifacts import write_json
from caibase.prompts import RESPONSE_STOPS, dialogue_prompt
from caibase.generation import GenerationSettings, generate, sample_seed
from caibase.models import encode_prompt, load_model, load_tokenizer, prepare_model
from caibase.prompts import load_prompt_set
from caibase.provenance import REPO_ROOT, code_version


def naive(model, tokenizer, prompts, settings, seed):
    """The baseline: each prompt alone, HF sampling, no batching."""
    texts, new_tokens = [], 0
    for i, prompt in enumerate(prompts):
        torch.manual_seed(sample_seed(seed, f"naive:{i}"))
        ids = torch.tensor([encode_prompt(tokenizer, prompt)], device=model.device)  # the engine's ids
        enc = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        with torch.inference_mode():
            out = model.generate(**enc, do_sample=True, temperature=settings.temperature, top_p=settings.top_p,
                                 max_new_tokens=settings.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                 stop_strings=list(settings.stop_strings), tokenizer=tokenizer)
        new = out[0, enc["input_ids"].shape[1]:]
        new_tokens += len(new)
        texts.append(tokenizer.decode(new, skip_special_tokens=True))
    return texts, new_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=REPO_ROOT / "results" / "embedded-cpu" / "model",
                        help="a prepared model dir; the embedded model is prepared there if missing")
    parser.add_argument("--n-prompts", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "generation.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    if not (args.model_dir / "model_info.json").is_file():
        prepare_model({"source": "embedded", "kind": "instruct"}, args.model_dir)
    tokenizer, model = load_tokenizer(args.model_dir), load_model(args.model_dir, device=args.device)
    records = load_prompt_set("redteam_train", REPO_ROOT / "data/prompts/redteam_train.jsonl").records
    prompts = [dialogue_prompt(r["prompt"]) for r in records[: args.n_prompts]]
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=0.7, top_p=0.95,
                                  batch_size=args.batch_sizes[0], stop_strings=RESPONSE_STOPS)
    seeds = [sample_seed(args.seed, str(i)) for i in range(len(prompts))]

    def measure(run) -> dict:
        load_before = os.getloadavg()
        start, cpu_start = time.perf_counter(), time.process_time()
        new_tokens = run()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        return {"seconds": seconds, "new_tokens": new_tokens, "tokens_per_s": new_tokens / seconds,
                "process_cpu_seconds": cpu_seconds, "tokens_per_cpu_s": new_tokens / cpu_seconds,
                "load_average_1_5_15_before": load_before, "load_average_1_5_15_after": os.getloadavg()}

    naive_result = measure(lambda: naive(model, tokenizer, prompts, settings, args.seed)[1])
    engine_results = {}
    for batch_size in args.batch_sizes:
        batch_settings = GenerationSettings(**{**settings.asdict(), "batch_size": batch_size})
        engine_results[f"batch_{batch_size}"] = result = measure(lambda s=batch_settings: sum(
            r.new_tokens for r in generate(model, tokenizer, prompts, s, seeds, progress=False)))
        result["speedup_tokens_per_s"] = result["tokens_per_s"] / naive_result["tokens_per_s"]
        result["speedup_tokens_per_cpu_s"] = result["tokens_per_cpu_s"] / naive_result["tokens_per_cpu_s"]

    report = {
        "benchmark": "generation",
        "model_dir": str(args.model_dir),
        "n_prompts": len(prompts),
        "settings": {k: v for k, v in settings.asdict().items() if k != "batch_size"},
        "threads": args.threads,
        "naive": naive_result,
        "engine": engine_results,
        "best_speedup_tokens_per_s": max(r["speedup_tokens_per_s"] for r in engine_results.values()),
        "torch": torch.__version__,
        "dtype": str(next(model.parameters()).dtype),
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "code_version": code_version(),
    }
    write_json(args.out, report)
    print(json.dumps({k: report[k] for k in ("naive", "engine", "best_speedup_tokens_per_s")}, indent=2))


if __name__ == "__main__":
    main()
