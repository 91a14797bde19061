"""Training cost on the embedded model: steps/s and peak resident memory of SFT and DPO with the settings of a
config (default: config/config.yaml's `sft` and `dpo` sections: batch size, gradient accumulation, sequence length,
LoRA), each in a fresh process so peak memory is its own. The default config runs DPO at 2 pairs (4 sequences) per
forward pass with 2 accumulation steps, the same sequences per forward pass as SFT's batch of 4. Target: DPO peak
memory at most 1.3x SFT's, which needs the reference to be the policy with its adapter disabled (no second model)
and its log-probs computed up front. Also measures gradient checkpointing flipped against the config's setting
(TRL turns it on by default; caibase off, `gradient_checkpointing` in a trainer section). Writes JSON.

    python benchmarks/bench_train.py --out benchmarks/results/train.json
    python benchmarks/bench_train.py --config config/config.yaml --model-dir results/embedded-cpu/model
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

TRAINER_KEYS = ("learning_rate", "batch_size", "gradient_accumulation_steps", "max_length", "beta",
                "precompute_ref_log_probs", "gradient_checkpointing", "lora")


def trainer_settings(config_path: Path, stage: str, steps: int) -> dict:
    """A stage's trainer settings from a config, with the schema's defaults filled in as Snakemake does."""
    import yaml
    from snakemake.utils import validate

    config = yaml.safe_load(config_path.read_text())
    validate(config, str(REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    return {"max_steps": steps, **{k: config[stage][k] for k in TRAINER_KEYS if k in config[stage]}}


def child(mode: str, model_dir: Path, cfg: dict, threads: int) -> None:
    """Runs in a fresh interpreter: train `cfg["max_steps"]` steps, then print the time and this process's peak RSS."""
    import torch

    from caibase.models import load_model, load_tokenizer
    from caibase.prompts import dialogue_prompt, load_prompt_set
    from caibase.training import train_dpo, train_sft

    torch.set_num_threads(threads)
    tokenizer, model = load_tokenizer(model_dir), load_model(model_dir)
    demos = load_prompt_set("helpful_sft", REPO_ROOT / "data/prompts/helpful_sft.jsonl", require=("response",)).records
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


def measure(mode: str, args, **overrides) -> dict:
    cfg = {**trainer_settings(args.config, mode, args.steps), **overrides}
    result = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--model-dir", str(args.model_dir), "--settings", json.dumps(cfg),
         "--threads", str(args.threads)],
        capture_output=True, text=True, check=True,
    )
    child_report = json.loads(result.stdout.strip().splitlines()[-1])
    seconds = child_report["seconds"]
    return {"steps": args.steps, "seconds": seconds, "steps_per_s": args.steps / seconds,
            "peak_rss_mib": child_report["peak_rss_kib"] / 1024, "settings": cfg,
            "sequences_per_forward": cfg["batch_size"] * (2 if mode == "dpo" else 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=REPO_ROOT / "results" / "embedded-cpu" / "model")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "config" / "config.yaml",
                        help="the config whose sft and dpo settings are measured")
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "benchmarks" / "results" / "train.json")
    parser.add_argument("--child", choices=["sft", "dpo"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.model_dir, json.loads(args.settings), args.threads)
        return
    if not (args.model_dir / "model_info.json").is_file():
        from caibase.models import prepare_model

        prepare_model({"source": "embedded", "kind": "instruct"}, args.model_dir)
    sft = measure("sft", args)
    dpo = measure("dpo", args)
    # The lever, measured against the config's setting: gradient checkpointing flipped, everything else equal.
    lever = {}
    for mode, measured in (("sft", sft), ("dpo", dpo)):
        flipped = measure(mode, args, gradient_checkpointing=not measured["settings"]["gradient_checkpointing"])
        on, off = (flipped, measured) if flipped["settings"]["gradient_checkpointing"] else (measured, flipped)
        lever[mode] = {"checkpointing_on": on, "checkpointing_off": off,
                       "speedup_off_over_on": on["seconds"] / off["seconds"],
                       "peak_memory_off_over_on": off["peak_rss_mib"] / on["peak_rss_mib"]}
    report = {
        "benchmark": "train", "model_dir": str(args.model_dir), "config": str(args.config), "threads": args.threads,
        "sft": sft, "dpo": dpo,
        "dpo_over_sft_peak_memory": dpo["peak_rss_mib"] / sft["peak_rss_mib"], "target_max_ratio": 1.3,
        "target_met": dpo["peak_rss_mib"] <= 1.3 * sft["peak_rss_mib"],
        "gradient_checkpointing": lever,
        "machine": platform.machine(), "code_version": code_version(),
    }
    write_json(args.out, report)
    print(json.dumps({k: report[k] for k in ("sft", "dpo", "dpo_over_sft_peak_memory")}, indent=2))
    for mode, row in lever.items():
        print(f"{mode}: gradient checkpointing off is {row['speedup_off_over_on']:.2f}x as fast as on, "
              f"peak memory {row['peak_memory_off_over_on']:.2f}x")


if __name__ == "__main__":
    main()
