"""Config checks beyond the JSON schema (which Snakemake's `validate()` applies first): cross-field rules and files
that must exist. Every error names the config key or file."""

from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import yaml

from caibase.constitution import ANTHROPIC_2022, ConstitutionError, load_constitution
from caibase.generation import GenerationSettings
from caibase.prompts import PromptSetError, load_prompt_set

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


def is_deepspeed(accelerate_config: str | os.PathLike) -> bool:
    """Whether an accelerate config file runs DeepSpeed (ZeRO), which needs CUDA."""
    return yaml.safe_load(Path(accelerate_config).read_text()).get("distributed_type") == "DEEPSPEED"


class ConfigError(ValueError):
    pass


def validate_schema(config: dict, schema_path: Path = SCHEMA) -> None:
    """The same schema check Snakemake's `validate()` does, for use outside Snakemake (tests, scripts)."""
    schema = yaml.safe_load(schema_path.read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConfigError(f"config key {where}: {error.message}")


def prompt_set_paths(config: dict, base_dir: Path = REPO_ROOT) -> dict[str, Path]:
    prompts = config["prompts"]
    paths = {"helpful_sft": prompts["helpful_sft"], "redteam_train": prompts["redteam_train"], **prompts["eval"]}
    return {name: (base_dir / path) for name, path in paths.items()}


def check_config(config: dict, base_dir: Path = REPO_ROOT) -> None:
    """Cross-field and file checks, run before any job starts."""
    model = config["model"]
    if model["source"] == "hub":
        for key in ("id", "revision"):
            if key not in model:
                raise ConfigError(f"config key model.{key} is required when model.source is 'hub'")
    if model["source"] == "local":
        if "path" not in model:
            raise ConfigError("config key model.path is required when model.source is 'local'")
        if not (base_dir / model["path"]).is_dir():
            raise ConfigError(f"config key model.path: {base_dir / model['path']} is not a directory")
    for name, path in prompt_set_paths(config, base_dir).items():
        key = f"prompts.{name}" if name in ("helpful_sft", "redteam_train") else f"prompts.eval.{name}"
        try:
            load_prompt_set(name, path, require=("response",) if name == "helpful_sft" else ())
        except (PromptSetError, ValueError) as err:
            raise ConfigError(f"config key {key}: {err}") from None
    training = config.get("training", {})
    if training.get("launcher") == "accelerate" and not (base_dir / training["accelerate_config"]).is_file():
        raise ConfigError(f"config key training.accelerate_config: {base_dir / training['accelerate_config']} "
                          "is not a file")
    if training.get("launcher") == "accelerate" and config.get("device", "cpu") != "cuda" and is_deepspeed(
            base_dir / training["accelerate_config"]):
        raise ConfigError("config key training.accelerate_config: DeepSpeed needs `device: cuda`")
    check_evaluation(config, base_dir)
    low, high = config.get("feedback", {}).get("chain_of_thought", {}).get("clamp", (0.4, 0.6))
    if not low <= 0.5 <= high:
        raise ConfigError(f"config key feedback.chain_of_thought.clamp: [{low}, {high}] must have low <= 0.5 <= high")
    sweep = config["dpo"].get("sweep", {})
    for name in sweep.get("eval_sets", []):
        if name not in config["prompts"]["eval"]:
            raise ConfigError(f"config key dpo.sweep.eval_sets: {name!r} is not an evaluation set in prompts.eval")
    needs_aif = "ai-feedback" in sweep.get("pairs", []) and sweep.get("sizes")
    if needs_aif and "dpo_aif" not in config["evaluation"]["conditions"]:  # two samples per prompt come with dpo_aif
        raise ConfigError("config key dpo.sweep.pairs: ai-feedback pairs need dpo_aif in evaluation.conditions")
    if config["constitution"] != ANTHROPIC_2022:
        try:
            load_constitution(config["constitution"], base_dir)
        except ConstitutionError as err:
            raise ConfigError(f"config key constitution: {err}") from None


def stage_resources(config: dict, stage: str, schema_path: Path = SCHEMA) -> dict:
    """Snakemake resources for one job of `stage` (a key of the schema's `resources`): the config's values over the
    schema's per-stage defaults. GPUs count only on `device: cuda`; training under `accelerate` asks for one GPU
    per process."""
    stages = yaml.safe_load(schema_path.read_text())["properties"]["resources"]["properties"]
    if stage not in stages:
        raise ConfigError(f"config key resources.{stage}: unknown stage (known: {', '.join(stages)})")
    resources = {**stages[stage]["default"], **config.get("resources", {}).get(stage, {})}
    training = config.get("training", {})
    if stage == "train" and training.get("launcher") == "accelerate":
        resources["gpu"] = training.get("num_processes", 1)
    if config.get("device", "cpu") != "cuda":
        resources["gpu"] = 0
    return resources


def check_evaluation(config: dict, base_dir: Path = REPO_ROOT) -> None:
    """Judges fit their tasks, the instruct reference has an instruct model, and the labeled judge-validation files
    are well formed. (A per-set limit for a set the config does not evaluate is ignored.)"""
    from caibase.judge_validation import LabeledFileError, load_labeled

    evaluation, prompts = config["evaluation"], config["prompts"]
    score_judge = evaluation.get("score_judge")
    if score_judge and score_judge["backend"] == "refusal-strings":
        raise ConfigError("config key evaluation.score_judge.backend: refusal-strings cannot rate 1-5; "
                          "use hf or openai")
    scored = [name for name in ("helpful", "style") if name in prompts["eval"]]
    if scored and not score_judge:
        raise ConfigError(f"config key evaluation.score_judge is required for the eval sets {scored}")
    if "instruct_ref" in evaluation["conditions"] and config["model"]["kind"] != "instruct":
        raise ConfigError("config key evaluation.conditions: instruct_ref evaluates the prepared model as an "
                          "instruct reference and needs model.kind instruct")
    for path in evaluation.get("judge_validation", {}).get("labeled", []):
        try:
            load_labeled(base_dir / path)
        except (LabeledFileError, ValueError) as err:
            raise ConfigError(f"config key evaluation.judge_validation.labeled: {err}") from None


def sampling_settings(sampling: dict, stop_strings: tuple[str, ...] = ()) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=sampling["max_new_tokens"], temperature=sampling["temperature"], top_p=sampling["top_p"],
        batch_size=sampling["batch_size"], stop_strings=tuple(stop_strings),
    )
