"""Training stages: helpful-only SFT (TRL SFTTrainer + LoRA) and DPO (TRL DPOTrainer + LoRA).

DPO trains a fresh LoRA adapter on top of the SFT policy (SFT adapter merged). TRL uses the same model with the
adapter disabled as the reference, so the reference is exactly the frozen SFT policy and no second copy is held.
Only adapters are saved; `caibase.models.load_model(model_dir, adapters=[...])` rebuilds any policy.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from datasets import Dataset
from peft import LoraConfig

from caibase.artifacts import atomic_path

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
        lr_scheduler_type="cosine",
        warmup_steps=cfg.get("warmup_steps", 0),
        logging_steps=1,
        save_strategy="no",
        report_to=[],
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
                _write_history(trainer, history_csv)
        accelerator.wait_for_everyone()
        return
    with atomic_path(adapter_dir, directory=True) as tmp:
        trainer.model.save_pretrained(tmp, safe_serialization=True)
    _write_history(trainer, history_csv)


def _write_history(trainer, history_csv: Path) -> None:
    with atomic_path(history_csv) as tmp:
        history = [row for row in trainer.state.log_history if "loss" in row or "eval_loss" in row]
        pd.DataFrame(history).to_csv(tmp, index=False)


def train_sft(model, tokenizer, records: list[dict], cfg: dict, seed: int, adapter_dir: Path, history_csv: Path,
              work_dir: Path, device: str = "cpu", dtype: str = "float32"):
    """records: {"prompt", "completion"}; loss on the completion only."""
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        **_common_args(cfg, seed, work_dir, device, dtype),
        max_length=cfg["max_length"],
        completion_only_loss=True,
        packing=False,
    )
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


def train_dpo(model, tokenizer, pairs: list[dict], cfg: dict, seed: int, adapter_dir: Path, history_csv: Path,
              work_dir: Path, device: str = "cpu", dtype: str = "float32", dev_pairs: list[dict] = ()):
    """pairs: {"prompt", "chosen", "rejected"}; `model` is the SFT policy, which TRL also uses as the reference.
    With `dev_pairs`, DPO metrics on them are logged every `eval_steps` steps."""
    from trl import DPOConfig, DPOTrainer

    def as_dataset(items):
        return Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in items])

    evaluation = dict(eval_strategy="steps", eval_steps=cfg.get("eval_steps", 10),
                      per_device_eval_batch_size=cfg["batch_size"]) if dev_pairs else {}
    args = DPOConfig(
        **_common_args(cfg, seed, work_dir, device, dtype),
        **evaluation,
        beta=cfg["beta"],
        label_smoothing=cfg.get("label_smoothing", 0.0),
        # Reference log-probs once, up front (adapter disabled = the SFT policy): no reference pass per step.
        precompute_ref_log_probs=cfg.get("precompute_ref_log_probs", True),
        max_length=cfg["max_length"],
    )
    trainer = DPOTrainer(
        model=model, ref_model=None, args=args, processing_class=tokenizer,
        train_dataset=as_dataset(pairs),
        eval_dataset=as_dataset(dev_pairs) if dev_pairs else None,
        peft_config=lora_config(cfg["lora"]),
    )
    trainer.train()
    _save(trainer, adapter_dir, history_csv)
    return trainer
