"""Every SFT/DPO config key the shipped configs set changes what the trainer does, or is rejected at config time.

TRL's configs take many arguments a given setting ignores (TRL 1.16.0's default `sigmoid` DPO loss ignores
`label_smoothing`, which caibase once set). Each key of the `sft`, `slcai_sft` and `dpo` sections is walked: keys
mapped onto TRL's SFTConfig/DPOConfig must change those arguments, LoRA keys the LoraConfig, and the keys caibase
itself reads must change what it builds; a key a section does not use is a schema error.
"""

import copy
import re
from pathlib import Path

import pytest
import yaml

from caibase.config import ConfigError, validate_schema

from conftest import REPO, load_config

CONFIGS = ["config.yaml", "smoke.yaml", "paper.yaml", "scale.yaml"]
SECTIONS = ["sft", "slcai_sft", "dpo"]


def bumped(value):
    """A different value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 0.5 if value >= 0.5 else value * 1.5
    if isinstance(value, list):
        return value[:-1] if len(value) > 1 else [*value, "gate_proj"]
    if value in ("cdpo", "hard"):
        return {"cdpo": "hard", "hard": "cdpo"}[value]
    raise AssertionError(f"no rule to change {value!r}")


def trl_args(section: str, cfg: dict, tmp_path: Path) -> dict:
    from caibase.training import dpo_args, sft_args

    if section == "dpo":
        return dpo_args(cfg, 0, tmp_path, evaluate=True).to_dict()
    return sft_args(cfg, 0, tmp_path).to_dict()


def changes_lora(section, cfg, key, tmp_path):
    from caibase.training import lora_config

    for sub, value in cfg["lora"].items():
        other = {**cfg["lora"], sub: bumped(value)}
        assert lora_config(other) != lora_config(cfg["lora"]), f"{section}.lora.{sub} does not change the LoraConfig"


def changes_trl_args(section, cfg, key, tmp_path):
    other = {**cfg, key: bumped(cfg[key])}
    before, after = trl_args(section, cfg, tmp_path), trl_args(section, other, tmp_path)
    assert before != after, f"{section}.{key} does not change TRL's arguments"


def changes_dev_split(section, cfg, key, tmp_path):
    from caibase.training import split_dev

    pairs = [{"id": str(i)} for i in range(40)]
    n_dev = len(split_dev(pairs, cfg[key], 0)[1])
    assert n_dev != len(split_dev(pairs, bumped(cfg[key]), 0)[1])


def changes_soft_labels(section, cfg, key, tmp_path):
    from caibase.training import preference_dataset, with_soft_labels

    pairs = [{"prompt": "p", "chosen": " a", "rejected": " b", "p_chosen": 0.7}]
    columns = {mode: preference_dataset(with_soft_labels(pairs, mode)).column_names for mode in ("cdpo", "hard")}
    assert "p_chosen" in columns["cdpo"] and "p_chosen" not in columns["hard"]


def changes_revisions(section, cfg, key, tmp_path):
    from caibase.prompts import slcai_sft_records

    record = {"id": "r", "prompt": "q", "rounds": [{"revision": "first try", "revision_degenerate": None},
                                                   {"revision": "second try", "revision_degenerate": None}]}
    assert slcai_sft_records([record], True) != slcai_sft_records([record], False)


def changes_sweep(section, cfg, key, tmp_path):
    """The sweep is read by the workflow (rules/common.smk expands its points) and by the DPO stage's schedule."""
    from caibase.data_scale import scaled_schedule

    schedules = {s: scaled_schedule({"max_steps": 40, "warmup_steps": 4, "eval_steps": 10}, 10, 40, s)
                 for s in ("same_epochs", "same_steps")}
    assert schedules["same_epochs"] != schedules["same_steps"]
    rules = (REPO / "workflow" / "rules" / "common.smk").read_text()
    for sub in cfg["sweep"]:
        if sub != "schedule":
            assert re.search(rf'SWEEP\["{sub}"\]', rules), f"dpo.sweep.{sub} is read by no rule"


# How each key reaches the trainer. A key set by a config and missing here fails the walk.
CHECKS = {
    "max_steps": changes_trl_args, "learning_rate": changes_trl_args, "batch_size": changes_trl_args,
    "gradient_accumulation_steps": changes_trl_args, "warmup_steps": changes_trl_args,
    "max_length": changes_trl_args, "beta": changes_trl_args, "precompute_ref_log_probs": changes_trl_args,
    "eval_steps": changes_trl_args, "gradient_checkpointing": changes_trl_args, "lora": changes_lora,
    "dev_fraction": changes_dev_split,
    "soft_labels": changes_soft_labels, "all_revisions": changes_revisions, "sweep": changes_sweep,
}


def walked_keys():
    for name in CONFIGS:
        config = load_config(name)  # with the schema's defaults, which reach the trainer like set keys
        for section in SECTIONS:
            for key in config[section]:
                yield pytest.param(name, section, key, id=f"{name}:{section}.{key}")


@pytest.mark.parametrize("name, section, key", list(walked_keys()))
def test_every_trainer_key_changes_the_trainer(name, section, key, tmp_path):
    cfg = load_config(name)[section]
    assert key in CHECKS, f"{section}.{key} ({name}) has no known effect on the trainer"
    CHECKS[key](section, cfg, key, tmp_path)


@pytest.mark.parametrize("section, key, value", [
    ("sft", "beta", 0.1), ("slcai_sft", "beta", 0.1), ("sft", "soft_labels", "cdpo"), ("sft", "all_revisions", True),
    ("dpo", "all_revisions", True), ("sft", "precompute_ref_log_probs", True), ("slcai_sft", "dev_fraction", 0.1),
    ("sft", "sweep", {}), ("dpo", "label_smoothing", 0.1), ("dpo", "loss_type", "robust"),
])
def test_a_key_the_section_would_ignore_is_a_config_error(section, key, value):
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config[section][key] = value
    with pytest.raises(ConfigError, match=rf"config key {section}: .*'{key}'"):
        validate_schema(config)


def test_the_old_global_label_smoothing_values_are_gone():
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    for old in ("label_smoothing", "ignore"):
        bad = copy.deepcopy(config)
        bad["dpo"]["soft_labels"] = old
        with pytest.raises(ConfigError, match="dpo.soft_labels"):
            validate_schema(bad)


def test_trl_ignores_no_argument_caibase_sets():
    """caibase keeps TRL's sigmoid loss and sets no `label_smoothing` (which sigmoid ignores in TRL 1.16.0)."""
    from caibase.training import dpo_args

    args = dpo_args(load_config("smoke.yaml")["dpo"], 0, Path("/tmp/unused"))
    assert args.loss_type == ["sigmoid"] and args.label_smoothing == 0.0


def test_gradient_checkpointing_is_off_unless_a_config_turns_it_on(tmp_path):
    """TRL 1.16.0 turns gradient checkpointing on by default (about a third more compute for LoRA on a small model);
    caibase leaves it off unless a trainer section asks for it (benchmarks/bench_train.py measures both)."""
    cfg = load_config("config.yaml")
    for section in SECTIONS:
        assert trl_args(section, cfg[section], tmp_path)["gradient_checkpointing"] is False, section
        on = {**cfg[section], "gradient_checkpointing": True}
        assert trl_args(section, on, tmp_path)["gradient_checkpointing"] is True, section
