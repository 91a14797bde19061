"""Where a run's files are: one function per kind of file under `results/<run>/`, used by the rule files
(workflow/rules/*.smk), the scripts and the report, so that a path is built in one place and never taken apart again.

`out` is the run's folder (run_dir); a seed, policy or pairs may be a Snakemake wildcard ("{seed}") as well as a value.
Import-light and torch-free: workflow/rules/common.smk imports it when Snakemake parses the workflow.
"""

from __future__ import annotations

from pathlib import PurePath

from caibase.vocabulary import DPO_POLICIES, SFT, SLCAI, parse_sweep_policy

BENCHMARKS_DIR = "benchmarks"


def run_dir(run_name: str) -> str:
    return f"results/{run_name}"


def seed_dir(out: str, seed) -> str:
    return f"{out}/seed{seed}"


def seed_label(seed) -> str:
    """How a seed is named in paths and figure legends: seed1."""
    return f"seed{seed}"


def stage_dir(out: str, seed, stage: str) -> str:
    """The folder of an SFT stage of one seed: `sft` (helpful-only SFT) or `slcai` (SL-CAI SFT)."""
    return f"{seed_dir(out, seed)}/{stage}"


def dpo_dir(out: str, seed, pairs, n_pairs=None) -> str:
    """The folder of DPO on one kind of pairs: the full pool, or a sweep point's subsample of `n_pairs`."""
    full = f"{seed_dir(out, seed)}/dpo/{pairs}"
    return full if n_pairs is None else f"{full}/n{n_pairs}"


def adapter_dir(folder: str) -> str:
    """The LoRA adapter a training stage writes in its folder (stage_dir, dpo_dir)."""
    return f"{folder}/adapter"


def history_path(folder: str) -> str:
    """The training log a training stage writes in its folder (stage_dir, dpo_dir)."""
    return f"{folder}/history.csv"


def policy_adapters(out: str, seed, policy: str) -> list[str]:
    """The LoRA adapters merged, in order, into the model for a policy: none for base and the instruct reference,
    SFT's, SL-CAI's, or SFT's then DPO's (on the full pool, or a sweep point's subsample)."""
    point = parse_sweep_policy(policy)
    sft = adapter_dir(stage_dir(out, seed, SFT))
    if point:
        return [sft, adapter_dir(dpo_dir(out, seed, *point))]
    if policy in DPO_POLICIES:
        return [sft, adapter_dir(dpo_dir(out, seed, DPO_POLICIES[policy]))]
    return {SFT: [sft], SLCAI: [adapter_dir(stage_dir(out, seed, SLCAI))]}.get(policy, [])


def eval_dir(out: str, seed, policy) -> str:
    return f"{seed_dir(out, seed)}/eval/{policy}"


def responses_path(out: str, seed, policy) -> str:
    """A policy's sampled responses on its evaluation sets."""
    return f"{eval_dir(out, seed, policy)}/responses.jsonl"


def judged_path(out: str, seed, policy) -> str:
    """A policy's judged responses."""
    return f"{eval_dir(out, seed, policy)}/judged.jsonl"


def pairs_path(out: str, seed, pairs, part: str | None = None) -> str:
    """One seed's preference pairs of one kind, or a `part` beside them: `excluded` (revision pairs left out, and
    why), `labels` (the feedback model's labels the AI-feedback pairs come from)."""
    return f"{seed_dir(out, seed)}/pairs/{pairs}{f'.{part}' if part else ''}.jsonl"


def redteam_responses_path(out: str, seed) -> str:
    """The SFT policy's responses to the red-team prompts, which critique-revision and AI feedback start from."""
    return f"{stage_dir(out, seed, SLCAI)}/responses.jsonl"


def revisions_path(out: str, seed) -> str:
    """The critique-revision loop's records (one per red-team response)."""
    return f"{stage_dir(out, seed, SLCAI)}/revisions.jsonl"


def benchmark_path(out: str, name: str) -> str:
    """Where `benchmark:` writes a job's wall time, CPU time, memory and I/O (one TSV per job): `name` is the rule's
    name, then the job's wildcards below it (`sft/seed{seed}`); the rule's name is the stage the cost table sums
    the job into (benchmark_stage)."""
    return f"{out}/{BENCHMARKS_DIR}/{name}.tsv"


def benchmark_stage(path: str) -> str:
    """The stage (rule) of a benchmark file, the inverse of benchmark_path: the first part of its path under
    `benchmarks/`. (A published cost number names only its files: verifying it checks their stage from the path.)"""
    parts = PurePath(path).parts
    folders = [i for i, part in enumerate(parts[:-1]) if part == BENCHMARKS_DIR]
    if not folders:
        raise ValueError(f"{path}: not a benchmark file (no {BENCHMARKS_DIR}/ folder in its path)")
    below = parts[folders[-1] + 1:]
    return PurePath(below[0]).stem if len(below) == 1 else below[0]
