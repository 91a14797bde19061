from pathlib import Path

from snakemake.exceptions import WorkflowError

from caibase.config import ConfigError, check_config, prompt_set_paths
from caibase.config import stage_resources as _stage_resources
from caibase.data_scale import POLICY_OF_PAIRS, parse_sweep_policy, sweep_policy

REPO = Path(workflow.basedir)

try:
    check_config(config, REPO)
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}") from None

OUT = f"results/{config['run_name']}"
SEEDS = config["seeds"]
CONDITIONS = config["evaluation"]["conditions"]
SOURCE_PROMPT_FILES = {name: str(path) for name, path in prompt_set_paths(config, REPO).items()}
EVAL_SETS = list(config["prompts"]["eval"])
# The red-team set is built per run (limit, optional HH-RLHF prompts); the others are used as shipped.
PROMPT_FILES = {**SOURCE_PROMPT_FILES, "redteam_train": f"{OUT}/prompts/redteam_train.jsonl"}
SWEEP = config["dpo"]["sweep"]
SWEEP_POLICIES = [sweep_policy(pairs, n) for pairs in SWEEP["pairs"] for n in SWEEP["sizes"]]
CONTAINER = config["container"]
ENV = "../envs/caibase.yaml"


wildcard_constraints:
    seed=r"\d+",
    policy=r"base|sft|slcai|dpo|dpo_aif|instruct_ref|dpo(_aif)?_n\d+",
    pairs="revision|ai-feedback",


def policy_adapters(wildcards):
    """LoRA adapters merged, in order, into the model for a policy."""
    seed_dir = f"{OUT}/seed{wildcards.seed}"
    point = parse_sweep_policy(wildcards.policy)
    if point:  # a data-scale sweep point: DPO on a subsample of the pairs
        return [f"{seed_dir}/sft/adapter", f"{seed_dir}/dpo/{point[0]}/n{point[1]}/adapter"]
    return {
        "base": [],
        "sft": [f"{seed_dir}/sft/adapter"],
        "slcai": [f"{seed_dir}/slcai/adapter"],
        "dpo": [f"{seed_dir}/sft/adapter", f"{seed_dir}/dpo/revision/adapter"],
        "dpo_aif": [f"{seed_dir}/sft/adapter", f"{seed_dir}/dpo/ai-feedback/adapter"],
        "instruct_ref": [],  # the prepared instruct model, prompted with its chat template
    }[wildcards.policy]


def stage_resources(stage):
    """Resources of one job of a stage (`resources.<stage>` in the config over the schema's defaults)."""
    return _stage_resources(config, stage, REPO / "workflow" / "schemas" / "config.schema.yaml")


def benchmark_file(name):
    """Where `benchmark:` writes a rule's wall time, memory and I/O (one TSV per job)."""
    return f"{OUT}/benchmarks/{name}.tsv"


def policy_eval_sets(wildcards):
    """Evaluation sets a policy is generated and judged on: all of them, or the sweep's for a sweep point."""
    return SWEEP["eval_sets"] if parse_sweep_policy(wildcards.policy) else EVAL_SETS


def data_scale_points():
    """Every point of the sweep per seed and pairs: SFT (no DPO), each subsample size, and the full pool."""
    points = []
    for seed in SEEDS:
        for pairs in SWEEP["pairs"]:
            seed_dir = f"{OUT}/seed{seed}/dpo/{pairs}"
            points.append({"seed": seed, "pairs": pairs, "point": "sft", "policy": "sft", "adapter": None})
            points += [{"seed": seed, "pairs": pairs, "point": f"n{n}", "policy": sweep_policy(pairs, n),
                        "adapter": f"{seed_dir}/n{n}/adapter"} for n in SWEEP["sizes"]]
            points.append({"seed": seed, "pairs": pairs, "point": "full", "policy": POLICY_OF_PAIRS[pairs],
                           "adapter": f"{seed_dir}/adapter"})
    return points


def final_outputs():
    return [
        f"{OUT}/tables/summary_by_condition.csv",
        f"{OUT}/tables/per_seed.csv",
        f"{OUT}/metrics.json",
        f"{OUT}/tables/judge_agreement.csv",
        f"{OUT}/paper/main.pdf",
        *([f"{OUT}/tables/data_scale.csv"] if SWEEP_POLICIES else []),
        *([f"{config['report']['publish_dir']}/published.json"] if config["report"]["publish_dir"] else []),
    ]


