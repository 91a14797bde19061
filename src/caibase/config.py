"""Config checks beyond the JSON schema (which Snakemake's `validate()` applies first): cross-field rules and files
that must exist. Every error names the config key or file."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from caibase.constitution import ANTHROPIC_2022, ConstitutionError, load_constitution
from caibase.generation import GenerationSettings
from caibase.prompts import PromptSetError, load_prompt_set

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


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


def sampling_settings(sampling: dict, stop_strings: tuple[str, ...] = ()) -> GenerationSettings:
    return GenerationSettings(
        max_new_tokens=sampling["max_new_tokens"], temperature=sampling["temperature"], top_p=sampling["top_p"],
        batch_size=sampling["batch_size"], stop_strings=tuple(stop_strings),
    )
