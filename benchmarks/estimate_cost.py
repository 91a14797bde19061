"""An ESTIMATE of the compute one seed of a config needs, from the measured benchmark figures (not a measurement).

Per seed, the config fixes the work: G tokens generated at most (red-team samples, critique and revision rounds,
evaluation responses; every response counted at max_new_tokens), Q SFT sequences (helpful SFT and SL-CAI SFT:
max_steps x batch_size x gradient_accumulation_steps x
training.num_processes each) and P DPO pairs (the same, per DPO run). The benchmarks
measured throughputs on one machine and model: r_gen tokens/s (bench_generation.py, engine), r_sft sequences/s and
r_dpo pairs/s (bench_train.py). Compute per token grows with the parameter count, so for a model with N parameters,
benchmarked with N_b:

    device-hours per seed = (G / r_gen + Q / r_sft + P / r_dpo) x (N / N_b) / 3600

Left out: AI-feedback scoring (two forward passes per pair, no sampling), the one-off feedback-model validation,
prompt lengths beyond the benchmark's, and the judge. Throughputs from a GPU run of the same benchmark scripts plug
in unchanged (--generation, --train); until then the figures are for the benchmark machine (2 CPU cores).

    python benchmarks/estimate_cost.py config/paper.yaml config/scale.yaml --out benchmarks/results/cost.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from snakemake.utils import validate

from caibase.artifacts import atomic_path, read_jsonl

REPO = Path(__file__).resolve().parents[1]
# Parameter counts: embedded counted from its converted safetensors; Llama-3.2-3B from its model card (3.21B).
PARAMETERS = {
    "embedded": 134_515_008,  # SmolLM2-135M-Instruct
    "meta-llama/Llama-3.2-3B": 3_212_749_824,
}


def load_config(path: Path) -> dict:
    """A config with the schema's defaults filled in, as the workflow's validate() does."""
    config = yaml.safe_load(path.read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def count_rows(path: Path) -> int:
    return len(read_jsonl(path))


def workload(config: dict, sweep_pairs: int | None = None) -> dict:
    """Per-seed work a config asks for: generated tokens (upper bound), SFT sequences, DPO pairs."""
    prompts, conditions = config["prompts"], config["evaluation"]["conditions"]
    redteam = count_rows(REPO / prompts["redteam_train"])
    if prompts.get("redteam_limit"):
        redteam = min(redteam, prompts["redteam_limit"])
    redteam += prompts["redteam_hh_rlhf"] or 0
    if sweep_pairs is not None:  # a data-scale point: as many red-team prompts as pairs
        redteam = sweep_pairs
    samples = 2 if "dpo_aif" in conditions else 1
    limits = prompts["eval_limits"]
    eval_prompts = config["evaluation"]["samples_per_prompt"] * sum(
        min(count_rows(REPO / path), limits.get(name, prompts["eval_limit"]) or 10**9)
        for name, path in prompts["eval"].items())
    tokens = {
        "generate_redteam": redteam * samples * config["generation"]["max_new_tokens"],
        "critique_revise": redteam * config["critique"]["rounds"] * 2
        * config["critique"]["sampling"]["max_new_tokens"],
        "generate_eval": len(conditions) * eval_prompts * config["evaluation"]["sampling"]["max_new_tokens"],
    }

    processes = config["training"]["num_processes"]

    def examples(stage: str) -> int:  # global batch x steps
        cfg = config[stage]
        return cfg["max_steps"] * examples_per_step(cfg) * processes

    dpo_runs = ("dpo" in conditions) + ("dpo_aif" in conditions)
    return {"redteam_prompts": redteam, "eval_prompts": eval_prompts, "generated_tokens": tokens,
            "sft_sequences": examples("sft") + ("slcai" in conditions) * examples("slcai_sft"),
            "dpo_pairs": dpo_runs * examples("dpo")}


def examples_per_step(settings: dict) -> int:
    """Sequences (SFT) or pairs (DPO) per optimizer step of one process in bench_train.py's settings."""
    return settings["batch_size"] * settings.get("gradient_accumulation_steps", 1)


def engine_rate(generation: dict, batch_size: int) -> tuple[int, float]:
    """(measured batch size, tokens/s) of the engine run of bench_generation.py closest to `batch_size`."""
    measured = {int(name.removeprefix("batch_")): run["tokens_per_s"] for name, run in generation["engine"].items()}
    nearest = min(measured, key=lambda size: (abs(size - batch_size), size))
    return nearest, measured[nearest]


def estimate(config: dict, generation: dict, train: dict, sweep_pairs: int | None = None) -> dict:
    work = workload(config, sweep_pairs)
    source = config["model"]["source"]
    key = "embedded" if source == "embedded" else config["model"].get("id")
    if key not in PARAMETERS:
        raise SystemExit(f"no parameter count for model {key!r}: add it to PARAMETERS in {__file__}")
    generation_batch, generation_rate = engine_rate(generation, config["generation"]["batch_size"])
    rates = {"generation_tokens_per_s": generation_rate, "generation_benchmark_batch_size": generation_batch,
             "sft_sequences_per_s": train["sft"]["steps_per_s"] * examples_per_step(train["sft"]["settings"]),
             "dpo_pairs_per_s": train["dpo"]["steps_per_s"] * examples_per_step(train["dpo"]["settings"])}
    scale = PARAMETERS[key] / PARAMETERS["embedded"]  # the benchmarks ran the embedded model
    seconds = {
        "generation": sum(work["generated_tokens"].values()) / rates["generation_tokens_per_s"] * scale,
        "sft": work["sft_sequences"] / rates["sft_sequences_per_s"] * scale,
        "dpo": work["dpo_pairs"] / rates["dpo_pairs_per_s"] * scale,
    }
    return {"run_name": config["run_name"], "model": key, "parameters": PARAMETERS[key],
            "parameter_ratio_to_benchmark_model": scale, "sweep_pairs": sweep_pairs, "workload": work,
            "benchmark_rates": rates, "estimated_hours_per_seed": {k: v / 3600 for k, v in seconds.items()},
            "estimated_hours_per_seed_total": sum(seconds.values()) / 3600,
            "seeds": len(config["seeds"]),
            "estimated_hours_all_seeds": sum(seconds.values()) / 3600 * len(config["seeds"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", type=Path)
    parser.add_argument("--generation", type=Path, default=REPO / "benchmarks/results/generation.json")
    parser.add_argument("--train", type=Path, default=REPO / "benchmarks/results/train.json")
    parser.add_argument("--sweep-pairs", type=int, nargs="*", default=[],
                        help="also estimate these data-scale points (red-team prompts = pairs)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    generation, train = (json.loads(p.read_text()) for p in (args.generation, args.train))
    rows = []
    for path in args.configs:
        config = load_config(path)
        rows.append({"config": str(path), **estimate(config, generation, train)})
        rows += [{"config": str(path), **estimate(config, generation, train, n)} for n in args.sweep_pairs]
    result = {"estimate": True, "formula": "hours/seed = (G/r_gen + Q/r_sft + P/r_dpo) * (N/N_b) / 3600",
              "benchmarks": {"generation": str(args.generation.relative_to(REPO)),
                             "train": str(args.train.relative_to(REPO)),
                             "machine": f"{generation['cpu_count']} CPU cores, {generation['torch']}"},
              "estimates": rows}
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(text)
    for row in rows:
        point = f" @ {row['sweep_pairs']} pairs" if row["sweep_pairs"] else ""
        print(f"{row['config']}{point}: {row['estimated_hours_per_seed_total']:.2f} h/seed "
              f"({', '.join(f'{k} {v:.2f}' for k, v in row['estimated_hours_per_seed'].items())}), "
              f"{row['estimated_hours_all_seeds']:.1f} h for {row['seeds']} seeds")


if __name__ == "__main__":
    main()
