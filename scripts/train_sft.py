"""SFT with LoRA from the prepared model, in the base-model `Human:/Assistant:` format. Two rules use it:
helpful-only SFT (human-written demonstrations) and SL-CAI SFT (the same demonstrations mixed with revisions).
The config's `training.launcher` runs it in this process or under `accelerate launch` (caibase.launch).

    snakemake --cores 2 results/embedded-cpu/seed1/sft/adapter
    snakemake --cores 2 results/embedded-cpu/seed1/slcai/adapter
"""

from caibase.launch import run_training, training_job

run_training(training_job(snakemake, "sft"))  # noqa: F821
