"""Training stages: helpful-only SFT (TRL SFTTrainer + LoRA) and DPO (TRL DPOTrainer + LoRA).

DPO trains a fresh LoRA adapter on top of the SFT policy (SFT adapter merged). TRL uses the same model with the
adapter disabled as the reference, so the reference is exactly the frozen SFT policy and no second copy is held.
Pairs with a soft label `p_chosen` train on the per-pair conservative DPO loss (`caibase.cdpo`, a small extension of
TRL's DPOTrainer); pairs without one are ordinary DPO pairs.
Only adapters are saved; `caibase.models.load_model(model_dir, adapters=[...])` rebuilds any policy.

`sft_stage` and `dpo_stage` are the stages as a Snakemake training job runs them (on its description, written by
`caibase.launch`, which runs them in the job's process or under `accelerate launch`): they read the job's inputs,
train, and write the adapter, its history and its provenance stamp.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import pandas as pd
from datasets import Dataset
from peft import LoraConfig

from caibase.artifacts import atomic_path, read_jsonl, write_csv, write_json
from caibase.launch import LaunchError

log = logging.getLogger(__name__)


def lora_config(cfg: dict) -> LoraConfig:
    return LoraConfig(
        r=cfg["r"], lora_alpha=cfg["alpha"], lora_dropout=cfg["dropout"],
        target_modules=list(cfg["target_modules"]), task_type="CAUSAL_LM",
    )


def _common_args(cfg: dict, seed: int, output_dir: Path, device: str, dtype: str) -> dict:
    return dict(
        bf16=dtype == "bfloat16",  # TRL turns bf16 on by default; float32 runs stay float32
        output_dir=str(output_dir),
        max_steps=cfg["max_steps"],
        per_device_train_batch_size=cfg["batch_size"],
        gradient_accumulation_steps=cfg.get("gradient_accumulation_steps", 1),
        learning_rate=cfg["learning_rate"],
        gradient_checkpointing=cfg.get("gradient_checkpointing", False),  # TRL turns it on by default
        lr_scheduler_type="cosine",
        warmup_steps=cfg.get("warmup_steps", 0),
        logging_steps=1,
        save_strategy="no",
        report_to=cfg.get("report_to", "none"),  # training.report_to; event files go to $TENSORBOARD_LOGGING_DIR
        seed=seed,
        data_seed=seed,
        use_cpu=device == "cpu",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def _save(trainer, adapter_dir: Path, history_csv: Path) -> None:
    accelerator = trainer.accelerator
    if accelerator.num_processes > 1 or trainer.is_deepspeed_enabled:  # gather sharded weights; the main process writes
        state_dict = accelerator.get_state_dict(trainer.deepspeed or trainer.model)  # every process takes part
        if accelerator.is_main_process:
            with atomic_path(adapter_dir, directory=True) as tmp:
                accelerator.unwrap_model(trainer.model).save_pretrained(tmp, state_dict=state_dict,
                                                                        safe_serialization=True)
                _canonical_adapter_config(tmp)
                _write_history(trainer, history_csv)
        accelerator.wait_for_everyone()
        return
    with atomic_path(adapter_dir, directory=True) as tmp:
        trainer.model.save_pretrained(tmp, safe_serialization=True)
        _canonical_adapter_config(tmp)
    _write_history(trainer, history_csv)


def _canonical_adapter_config(adapter_dir: Path) -> None:
    """PEFT saves `target_modules` from a set, in an order that depends on PYTHONHASHSEED: sort it, so identical
    runs write identical bytes on any machine."""
    path = Path(adapter_dir) / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")


# Columns of the trainer's log that measure the machine, not the training (they differ between identical runs).
TIMING_COLUMNS = ("runtime", "per_second", "total_flos")


def _write_history(trainer, history_csv: Path) -> None:
    """Per-step training and dev metrics to `history_csv` (with its manifest); the timing columns to a sibling
    `<name>.timing.csv`, so the history is byte-identical between identical runs."""
    history = pd.DataFrame([row for row in trainer.state.log_history if "loss" in row or "eval_loss" in row])
    timing = [c for c in history.columns if any(key in c for key in TIMING_COLUMNS)]
    write_csv(history.drop(columns=timing), history_csv, float_format=None)
    with atomic_path(history_csv.with_suffix(".timing.csv")) as tmp:
        history[["step", *timing]].to_csv(tmp, index=False)


def sft_args(cfg: dict, seed: int, work_dir: Path, device: str = "cpu", dtype: str = "float32"):
    """TRL's SFTConfig for an `sft`/`slcai_sft` config section."""
    from trl import SFTConfig

    return SFTConfig(
        **_common_args(cfg, seed, work_dir, device, dtype),
        max_length=cfg["max_length"],
        completion_only_loss=True,
        packing=False,
    )


def train_sft(model, tokenizer, records: list[dict], cfg: dict, seed: int, adapter_dir: Path, history_csv: Path,
              work_dir: Path, device: str = "cpu", dtype: str = "float32"):
    """records: {"prompt", "completion"}; loss on the completion only."""
    from trl import SFTTrainer

    args = sft_args(cfg, seed, work_dir, device, dtype)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(records), processing_class=tokenizer,
        peft_config=lora_config(cfg["lora"]),
    )
    trainer.train()
    _save(trainer, adapter_dir, history_csv)
    return trainer


def split_dev(pairs: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """A seeded shuffle, then the first `fraction` of the pairs (at least one, when there are two or more) held out."""
    import random

    shuffled = list(pairs)
    random.Random(f"{seed}:dev-split").shuffle(shuffled)
    n_dev = max(1, round(fraction * len(shuffled))) if fraction > 0 and len(shuffled) > 1 else 0
    return shuffled[n_dev:], shuffled[:n_dev]


def dpo_args(cfg: dict, seed: int, work_dir: Path, device: str = "cpu", dtype: str = "float32",
             evaluate: bool = False):
    """TRL's DPOConfig for a `dpo` config section (`evaluate`: there are dev pairs). TRL's default loss (sigmoid)
    is kept; soft labels enter per pair through `caibase.cdpo`, not through TRL's global `label_smoothing`."""
    from trl import DPOConfig

    evaluation = dict(eval_strategy="steps", eval_steps=cfg.get("eval_steps", 10),
                      per_device_eval_batch_size=cfg["batch_size"]) if evaluate else {}
    return DPOConfig(
        **_common_args(cfg, seed, work_dir, device, dtype),
        **evaluation,
        beta=cfg["beta"],
        # Reference log-probs once, up front (adapter disabled = the SFT policy): no reference pass per step.
        precompute_ref_log_probs=cfg.get("precompute_ref_log_probs", True),
        max_length=cfg["max_length"],
    )


def with_soft_labels(pairs: list[dict], mode: str) -> list[dict]:
    """`dpo.soft_labels`: `cdpo` keeps each pair's `p_chosen` (per-pair conservative DPO); `hard` drops it."""
    if mode == "cdpo":
        return list(pairs)
    if mode == "hard":
        return [{k: v for k, v in p.items() if k != "p_chosen"} for p in pairs]
    raise ValueError(f"dpo.soft_labels must be cdpo or hard, not {mode!r}")


def preference_dataset(pairs: list[dict]) -> Dataset:
    """prompt/chosen/rejected, plus `p_chosen` (the soft label; 1.0 where a pair has none) when any pair has one.
    Without soft labels the dataset is exactly what plain DPO trains on."""
    columns = ["prompt", "chosen", "rejected"]
    if any("p_chosen" in p for p in pairs):
        rows = [{**{k: p[k] for k in columns}, "p_chosen": float(p.get("p_chosen", 1.0))} for p in pairs]
        bad = [r["p_chosen"] for r in rows if not 0.0 <= r["p_chosen"] <= 1.0]
        if bad:
            raise ValueError(f"p_chosen must lie in [0, 1]; got {bad[:5]}")
        return Dataset.from_list(rows)
    return Dataset.from_list([{k: p[k] for k in columns} for p in pairs])


def train_dpo(model, tokenizer, pairs: list[dict], cfg: dict, seed: int, adapter_dir: Path, history_csv: Path,
              work_dir: Path, device: str = "cpu", dtype: str = "float32", dev_pairs: list[dict] = ()):
    """pairs: {"prompt", "chosen", "rejected"} and optionally "p_chosen", the probability that `chosen` is the
    better response; `model` is the SFT policy, which TRL also uses as the reference. Pairs with `p_chosen` < 1
    train on the per-pair conservative DPO loss (`caibase.cdpo`); pairs without it are ordinary DPO pairs.
    With `dev_pairs`, DPO metrics on them are logged every `eval_steps` steps."""
    from caibase.cdpo import SoftLabelDPOTrainer

    args = dpo_args(cfg, seed, work_dir, device, dtype, evaluate=bool(dev_pairs))
    trainer = SoftLabelDPOTrainer(
        model=model, ref_model=None, args=args, processing_class=tokenizer,
        train_dataset=preference_dataset(pairs),
        eval_dataset=preference_dataset(dev_pairs) if dev_pairs else None,
        peft_config=lora_config(cfg["lora"]),
    )
    trainer.train()
    _save(trainer, adapter_dir, history_csv)
    return trainer


def _device(config: dict) -> str:
    """This process's device: under a multi-GPU launch, the GPU of its local rank."""
    if config["device"] == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return config["device"]


def _launch_record(config: dict, trainer) -> dict:
    """Recorded beside the adapter when the run used several processes; empty for the default launcher."""
    if config["training"]["launcher"] == "python":
        return {}
    return {"launcher": "accelerate", "num_processes": trainer.accelerator.num_processes,
            "accelerate_config": config["training"]["accelerate_config"]}


def sft_stage(job: dict, log) -> None:
    """SFT with LoRA from the prepared model (helpful-only SFT, or SL-CAI SFT when the job has revisions)."""
    from caibase.models import check_training_model, load_model, load_model_info, load_tokenizer
    from caibase.prompts import dialogue_prompt, load_prompt_set, slcai_sft_records
    from caibase.provenance import stamp

    seed, config, inputs, outputs = job["seed"], job["config"], job["input"], job["output"]
    model_dir = Path(inputs["model"]).parent
    check_training_model(model_dir)  # a model declared base that looks instruction-tuned is refused here
    demos = load_prompt_set("helpful_sft", inputs["demonstrations"], require=("response",))
    records = [{"prompt": dialogue_prompt(d["prompt"]), "completion": " " + d["response"].strip()}
               for d in demos.records]
    n_revisions = 0
    if "revisions" in inputs:
        revisions = slcai_sft_records(read_jsonl(inputs["revisions"]), job["params"]["all_revisions"])
        n_revisions = len(revisions)
        records += revisions
    model = load_model(model_dir, dtype=config["model"]["dtype"], device=_device(config))
    with tempfile.TemporaryDirectory() as work:
        trainer_cfg = {**job["params"]["trainer"], "report_to": config["training"]["report_to"]}
        trainer = train_sft(model, load_tokenizer(model_dir), records, trainer_cfg, seed,
                            Path(outputs["adapter"]), Path(outputs["history"]), Path(work),
                            device=config["device"], dtype=config["model"]["dtype"])
    if trainer.accelerator.is_main_process:
        write_json(Path(outputs["adapter"]) / "caibase.json",
                   {"stage": job["rule"], "n_examples": len(records), "n_revisions": n_revisions,
                    **_launch_record(config, trainer), **stamp(config, load_model_info(model_dir), seed)})
    log.info("%s adapter written to %s (%d examples, %d revisions)", job["rule"], outputs["adapter"], len(records),
             n_revisions)


def dpo_stage(job: dict, log) -> None:
    """DPO with a fresh LoRA adapter on the SFT policy. AI-feedback pairs keep their soft label `p_chosen`, and
    `dpo.soft_labels: cdpo` trains each pair on the conservative DPO loss with eps = 1 - p_chosen (caibase.cdpo);
    `hard` drops the labels (ordinary DPO on the chosen/rejected direction). Revision pairs are hard pairs."""
    from caibase.data_scale import nested_subsample, scaled_schedule
    from caibase.models import check_training_model, load_model, load_model_info, load_tokenizer
    from caibase.provenance import stamp

    seed, config, inputs, outputs = job["seed"], job["config"], job["input"], job["output"]
    model_dir = Path(inputs["model"]).parent
    check_training_model(model_dir)  # a model declared base that looks instruction-tuned is refused here
    records = read_jsonl(inputs["pairs"])
    if not records:
        raise LaunchError(f"{inputs['pairs']} holds no pairs: nothing to train DPO on (seed {seed})")
    pairs, dev = split_dev(with_soft_labels(records, config["dpo"]["soft_labels"]), config["dpo"]["dev_fraction"],
                           seed)
    trainer_cfg = {**config["dpo"], "report_to": config["training"]["report_to"]}
    sweep = {}
    n_requested = job["params"].get("n_pairs")
    if n_requested is not None:  # a data-scale sweep point: a nested subsample of the training pool
        pool_size = len(pairs)
        pairs = nested_subsample(pairs, n_requested, seed)
        trainer_cfg = scaled_schedule(trainer_cfg, len(pairs), pool_size, config["dpo"]["sweep"]["schedule"])
        sweep = {"n_requested": n_requested, "pool_size": pool_size, "capped": n_requested > pool_size,
                 "max_steps": trainer_cfg["max_steps"], "pair_ids": [p["id"] for p in pairs]}
        if sweep["capped"]:
            log.warning("data-scale point n=%d: the %s pool of seed %d has only %d training pairs; capped to the "
                        "pool (this point is left out of the data-scale tables)", n_requested,
                        job["wildcards"]["pairs"], seed, pool_size)
        log.info("data-scale point: %d of %d pairs, %d steps (%s)", len(pairs), pool_size,
                 trainer_cfg["max_steps"], config["dpo"]["sweep"]["schedule"])
    eps = [1 - p.get("p_chosen", 1.0) for p in pairs]
    labels = {"soft_labels": config["dpo"]["soft_labels"], "n_soft_pairs": sum(e > 0 for e in eps),
              "mean_label_smoothing": sum(eps) / len(eps)}
    log.info("labels: %d of %d training pairs soft (per-pair cDPO), mean eps = 1 - p_chosen %.4f",
             labels["n_soft_pairs"], len(pairs), labels["mean_label_smoothing"])
    policy = load_model(model_dir, adapters=[inputs["sft_adapter"]], dtype=config["model"]["dtype"],
                        device=_device(config))
    with tempfile.TemporaryDirectory() as work:
        trainer = train_dpo(policy, load_tokenizer(model_dir), pairs, trainer_cfg, seed, Path(outputs["adapter"]),
                            Path(outputs["history"]), Path(work), device=config["device"],
                            dtype=config["model"]["dtype"], dev_pairs=dev)
    if trainer.accelerator.is_main_process:
        write_json(Path(outputs["adapter"]) / "caibase.json",
                   {"stage": "dpo", "pairs": job["wildcards"]["pairs"], "n_pairs": len(pairs),
                    "n_dev_pairs": len(dev), **labels, **sweep,
                    **_launch_record(config, trainer), **stamp(config, load_model_info(model_dir), seed)})
    log.info("DPO adapter written to %s (%d pairs)", outputs["adapter"], len(pairs))
