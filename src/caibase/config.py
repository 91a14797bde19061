"""Config checks beyond the JSON schema (which Snakemake's `validate()` applies first): cross-field rules and files
that must exist. Every error names the config key or file."""

from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import yaml

from caibase import REPO_ROOT
from caibase.base_model import InstructModelError, check_config_model
from caibase.constitution import SOURCE_CONSTITUTIONS, ConstitutionError, load_constitution
from caibase.prompts import PromptSetError, load_prompt_set
from caibase.seed2025 import PROMPT_SETS as SEED_PROMPT_SETS
from caibase.seed2025 import SeedSourceError
from caibase.seed2025 import judge_template_name as seed_judge_template
from caibase.seed2025 import parse_spec as seed_prompt_set
from caibase.vocabulary import AI_FEEDBACK, DPO_AIF, INSTRUCT_REF, SCORED_SETS

SCHEMA = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


def is_deepspeed(accelerate_config: str | os.PathLike) -> bool:
    """Whether an accelerate config file runs DeepSpeed (ZeRO), which needs CUDA."""
    return yaml.safe_load(Path(accelerate_config).read_text()).get("distributed_type") == "DEEPSPEED"


class ConfigError(ValueError):
    pass


def _strict_integer(checker, instance) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


# JSON Schema counts 1.0 as an integer; a seed, a step count or a limit of 1.0 is a float in Python and breaks
# wildcards and ranges, so the config's integers must be written as integers.
StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)


def validate_schema(config: dict, schema_path: Path = SCHEMA) -> None:
    """The schema check Snakemake's `validate()` does, for use outside Snakemake (tests, scripts, and
    `check_config`), with integers checked strictly (`seeds: [1.0, 2]` is an error)."""
    schema = yaml.safe_load(schema_path.read_text())
    errors = list(StrictValidator(schema).iter_errors(config))
    # A section whose subschema fails also reports all its keys as unevaluated; the failing key is the better error.
    errors = [e for e in errors if e.validator != "unevaluatedProperties"] or errors
    error = jsonschema.exceptions.best_match(errors)
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConfigError(f"config key {where}: {error.message}")


def prompt_set_specs(config: dict) -> dict[str, str]:
    """Each prompt set's config value by its name (helpful_sft, redteam_train, then the eval sets): a repository
    path, or `seed-2025:<set>`, a set of the replicated study (see `seed_prompt_set_file`)."""
    prompts = config["prompts"]
    return {"helpful_sft": prompts["helpful_sft"], "redteam_train": prompts["redteam_train"], **prompts["eval"]}


def seed_prompt_set_file(config: dict, seed_set: str) -> str:
    """Where the rule `seed_prompt_set` writes `seed-2025:<seed_set>` for this run (relative to the repository)."""
    return f"results/{config['run_name']}/prompts/seed-2025/{seed_set}.jsonl"


def prompt_set_paths(config: dict, base_dir: Path = REPO_ROOT) -> dict[str, Path]:
    """Each prompt set's file: the configured path, or, for `seed-2025:<set>`, the file the workflow writes."""
    return {name: base_dir / (seed_prompt_set_file(config, seed_set) if (seed_set := seed_prompt_set(spec)) else spec)
            for name, spec in prompt_set_specs(config).items()}


def repo_paths(config: dict) -> dict[str, str]:
    """Every config value that names a path inside the repository, by its config key."""
    prompts, evaluation = config.get("prompts", {}), config.get("evaluation", {})
    paths = {f"prompts.{key}": prompts.get(key) for key in ("helpful_sft", "redteam_train")}
    paths |= {f"prompts.eval.{name}": path for name, path in prompts.get("eval", {}).items()}
    paths = {key: path for key, path in paths.items() if not seed_prompt_set(path)}  # written by the workflow
    paths |= {f"evaluation.judge_validation.labeled[{i}]": path
              for i, path in enumerate(evaluation.get("judge_validation", {}).get("labeled", []))}
    paths["training.accelerate_config"] = config.get("training", {}).get("accelerate_config")
    paths["report.publish_dir"] = config.get("report", {}).get("publish_dir")
    if config.get("constitution") not in SOURCE_CONSTITUTIONS:
        paths["constitution"] = config.get("constitution")
    return {key: path for key, path in paths.items() if path is not None}


def check_repo_paths(config: dict, base_dir: Path = REPO_ROOT) -> None:
    """Each path-valued key, resolved (symbolic links followed), must stay inside the repository."""
    root = Path(base_dir).resolve()
    for key, path in repo_paths(config).items():
        resolved = (root / path).resolve()
        if Path(path).is_absolute() or not resolved.is_relative_to(root):
            raise ConfigError(f"config key {key}: {path!r} resolves to {resolved}, outside the repository {root}")


def prepared_models(config: dict) -> dict[str, tuple[str, dict]]:
    """The models a run prepares, by their folder under results/<run_name>/, each as (config key, model entry):
    `model`, the model every policy starts from, and `reference_model`, the instruct reference
    (evaluation.instruct_reference) when the config has one."""
    models = {"model": ("model", config["model"])}
    if reference := config["evaluation"].get("instruct_reference"):
        models["reference_model"] = ("evaluation.instruct_reference", reference)
    return models


def check_model_entry(model: dict, key: str, base_dir: Path = REPO_ROOT) -> None:
    """A model entry (`model`, `evaluation.instruct_reference`) names its source fully: a hub model its id and
    pinned revision, a local one an existing directory."""
    if model["source"] == "hub":
        for name in ("id", "revision"):
            if name not in model:
                raise ConfigError(f"config key {key}.{name} is required when {key}.source is 'hub'")
    if model["source"] == "local":
        if "path" not in model:
            raise ConfigError(f"config key {key}.path is required when {key}.source is 'local'")
        if not (base_dir / model["path"]).is_dir():
            raise ConfigError(f"config key {key}.path: {base_dir / model['path']} is not a directory")


def check_config(config: dict, base_dir: Path = REPO_ROOT) -> None:
    """Cross-field and file checks, run before any job starts (after the schema, checked again here with strict
    integers, which Snakemake's `validate()` does not do)."""
    validate_schema(config)
    check_repo_paths(config, base_dir)
    for key, entry in prepared_models(config).values():
        check_model_entry(entry, key, base_dir)
    try:  # model.kind base for a model whose name says instruct (the full check runs in prepare_model)
        check_config_model(config["model"])
    except InstructModelError as err:
        raise ConfigError(str(err)) from None
    specs = prompt_set_specs(config)
    for name, path in prompt_set_paths(config, base_dir).items():
        key = f"prompts.{name}" if name in ("helpful_sft", "redteam_train") else f"prompts.eval.{name}"
        if (seed_set := seed_prompt_set(specs[name])) is not None:  # fetched and written by the workflow
            if seed_set not in SEED_PROMPT_SETS:
                raise ConfigError(f"config key {key}: unknown seed-2025 prompt set {seed_set!r} "
                                  f"(known: {', '.join(SEED_PROMPT_SETS)})")
            continue
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
    needs_aif = AI_FEEDBACK in sweep.get("pairs", []) and sweep.get("sizes")
    if needs_aif and DPO_AIF not in config["evaluation"]["conditions"]:  # two samples per prompt come with dpo_aif
        raise ConfigError("config key dpo.sweep.pairs: ai-feedback pairs need dpo_aif in evaluation.conditions")
    if DPO_AIF in config["evaluation"]["conditions"] and not config.get("feedback", {}).get("validate", True):
        raise ConfigError("config key feedback.validate: the AI-feedback condition dpo_aif is reported only when "
                          "the feedback model's validation passes its gate (caibase.feedback_gate); set "
                          "feedback.validate: true or leave dpo_aif out of evaluation.conditions")
    if config["constitution"] not in SOURCE_CONSTITUTIONS:  # those are fetched (sha256-checked) when used
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
    """Judges fit their tasks (the seed-2025 judge prompts: an openai judge, and a study prompt for each task),
    instruct_ref has an instruct reference model, and the labeled judge-validation files are well formed, with
    distinct names; one whose items are drawn but whose label passes are not merged yet (PendingLabelsError)
    passes here and fails the rule validate_judges. (A per-set limit for a set the config does not evaluate is
    ignored.)"""
    from caibase.judge_validation import LabeledFileError, PendingLabelsError, load_labeled
    from caibase.judges import OpenAIJudge

    evaluation, prompts = config["evaluation"], config["prompts"]
    score_judge = evaluation.get("score_judge")
    if score_judge and score_judge["backend"] == "refusal-strings":
        raise ConfigError("config key evaluation.score_judge.backend: refusal-strings cannot rate 1-5; "
                          "use hf or openai")
    for key in ("judge", "score_judge"):
        judge = evaluation.get(key) or {}
        if judge.get("prompts") != "seed-2025":
            continue
        if judge["backend"] != OpenAIJudge.backend:
            raise ConfigError(f"config key evaluation.{key}.prompts: the study's judge prompts are answered in "
                              f"several lines that only the openai backend reads, not {judge['backend']}")
        for task in OpenAIJudge.tasks:
            try:
                seed_judge_template(task)
            except SeedSourceError as err:
                raise ConfigError(f"config key evaluation.{key}.prompts: {err}") from None
    scored = [name for name in SCORED_SETS if name in prompts["eval"]]
    if scored and not score_judge:
        raise ConfigError(f"config key evaluation.score_judge is required for the eval sets {scored}")
    reference = evaluation.get("instruct_reference")
    if INSTRUCT_REF in evaluation["conditions"] and not reference:
        raise ConfigError("config key evaluation.instruct_reference is required by the condition instruct_ref "
                          "(evaluation.conditions): the instruct model it generates from, a model entry like `model` "
                          "(e.g. the instruct sibling of a base model, or {source: embedded, kind: instruct})")
    if reference and reference["kind"] != "instruct":
        raise ConfigError(f"config key evaluation.instruct_reference.kind: the instruct reference must be an instruct "
                          f"model (kind: instruct), not {reference['kind']!r}")
    labeled = evaluation.get("judge_validation", {}).get("labeled", [])
    names = [Path(path).stem for path in labeled]
    if len(set(names)) != len(names):  # the file name is the dataset name of its agreement rows
        raise ConfigError(f"config key evaluation.judge_validation.labeled: two files share a name in {labeled}")
    for path in labeled:
        try:
            load_labeled(base_dir / path)
        except PendingLabelsError:
            continue  # drawn, labels not merged yet: the rule validate_judges fails on it, saying how to merge
        except (LabeledFileError, ValueError) as err:
            raise ConfigError(f"config key evaluation.judge_validation.labeled: {err}") from None


def sampling_settings(sampling: dict, stop_strings: tuple[str, ...] = ()) -> GenerationSettings:  # noqa: F821
    from caibase.generation import GenerationSettings  # torch: imported by the jobs, not when the DAG is parsed

    return GenerationSettings(
        max_new_tokens=sampling["max_new_tokens"], temperature=sampling["temperature"], top_p=sampling["top_p"],
        batch_size=sampling["batch_size"], stop_strings=tuple(stop_strings),
    )
