"""DPO with a fresh LoRA adapter on the SFT policy; the reference is the SFT policy (adapter disabled). Pairs are
revision-vs-original or AI-feedback; soft AI-feedback labels set TRL's label_smoothing to the mean 1 - p(chosen).
The config's `training.launcher` runs it in this process or under `accelerate launch` (caibase.launch).
A data-scale sweep point (`params.n_pairs`) trains on a nested subsample of the same training pool.

    snakemake --cores 2 results/embedded-cpu/seed1/dpo/revision/adapter
    snakemake --cores 2 results/embedded-cpu/seed1/dpo/ai-feedback/adapter
    snakemake --cores 2 results/embedded-cpu/seed1/dpo/revision/n8/adapter   # sweep point: 8 pairs
"""

from caibase.launch import run_training, training_job

run_training(training_job(snakemake, "dpo"))  # noqa: F821
