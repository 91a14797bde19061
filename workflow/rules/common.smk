from pathlib import Path

from snakemake.exceptions import WorkflowError

from caibase.config import ConfigError, check_config, prompt_set_paths

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
CONTAINER = config["container"]
ENV = "../envs/caibase.yaml"


wildcard_constraints:
    seed=r"\d+",
    policy="base|sft|slcai|dpo|dpo_aif",
    pairs="revision|ai-feedback",


def policy_adapters(wildcards):
    """LoRA adapters merged, in order, into the model for a policy."""
    seed_dir = f"{OUT}/seed{wildcards.seed}"
    return {
        "base": [],
        "sft": [f"{seed_dir}/sft/adapter"],
        "slcai": [f"{seed_dir}/slcai/adapter"],
        "dpo": [f"{seed_dir}/sft/adapter", f"{seed_dir}/dpo/revision/adapter"],
        "dpo_aif": [f"{seed_dir}/sft/adapter", f"{seed_dir}/dpo/ai-feedback/adapter"],
    }[wildcards.policy]


def final_outputs():
    return [
        f"{OUT}/tables/summary_by_condition.csv",
        f"{OUT}/tables/per_seed.csv",
        f"{OUT}/metrics.json",
        f"{OUT}/paper/main.pdf",
        *([f"{config['report']['publish_dir']}/published.json"] if config["report"]["publish_dir"] else []),
    ]


def optional_table(name):
    """Another stage's table (data-scale sweep, judge agreement), rendered when the run's final outputs include it."""
    path = f"{OUT}/tables/{name}.csv"
    return lambda wildcards: [path] if path in final_outputs() else []
