"""DPO with a fresh LoRA adapter on the SFT policy; the reference is the SFT policy (adapter disabled). Pairs are
revision-vs-original (hard pairs, ordinary DPO) or AI-feedback (position-inconsistent labels already dropped by
ai_feedback_labels); each AI-feedback pair trains on the conservative DPO loss with its own eps = 1 - p_chosen
(`dpo.soft_labels: cdpo`, caibase.cdpo; `hard` drops the labels), and the history logs each step's mean eps.
The config's `training.launcher` runs it in this process or under `accelerate launch` (caibase.launch).
A data-scale sweep point (`params.n_pairs`) trains on a nested subsample of the same training pool.

    snakemake --cores 2 results/embedded-cpu/seed1/dpo/revision/adapter
    snakemake --cores 2 results/embedded-cpu/seed1/dpo/ai-feedback/adapter
    snakemake --cores 2 results/embedded-cpu/seed1/dpo/revision/n8/adapter   # sweep point: 8 pairs
"""

from caibase.launch import run_training, training_job

run_training(training_job(snakemake, "dpo"))  # noqa: F821
