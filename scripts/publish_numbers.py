"""Every number the write-up reports, recomputed from the raw per-item records with the formula registry and checked
against the aggregate tables: published.json (number, sources, formula) and the paper's macro file.

    snakemake --cores 1 results/embedded-cpu/paper/published.json
"""

import pandas as pd

from caibase.artifacts import atomic_path, check_manifest, read_json, read_records, write_json
from caibase.macros import macros_tex
from caibase.metrics import CI_LEVEL, is_rate
from caibase.provenance import code_version, config_sha256
from caibase.published import (
    ABS_TOLERANCE,
    build_numbers,
    cost_numbers,
    data_scale_numbers,
    formula_docs,
    judge_agreement_numbers,
    judge_gate_numbers,
)
from caibase.runtime import setup
from caibase.vocabulary import REFUSAL_TASK, SCORE_TASKS


def prompts_per_set(prompts: dict) -> str:
    """'16' or '16 (8 for helpful, 8 for style)': the eval_limit and its per-set overrides."""
    overrides = ", ".join(f"{n} for {name}" for name, n in sorted((prompts.get("eval_limits") or {}).items()))
    limit = prompts.get("eval_limit") or "all"
    return f"{limit} ({overrides})" if overrides else str(limit)


def model_meta(info: dict) -> dict:
    """What the write-up says about a prepared model (its model_info.json)."""
    return {k: info[k] for k in ("id", "source", "kind", "sha256")}


def main(smk) -> None:
    log = setup(smk.log[0])
    config = smk.params.config
    for path in smk.input:  # every record and table file is checked against its manifest before anything is read
        if path.endswith((".jsonl", ".csv")):
            check_manifest(path)

    def judged_path(seed: int, policy: str) -> str:
        return smk.params.judged_path.format(seed=seed, policy=policy)

    judged = smk.params.judged_of  # condition -> judged records per seed (input.judged)
    histories = {pairs: list(by_seed.values()) for pairs, by_seed in smk.params.histories_of.items()}  # per seed
    feedback = dict(zip(("hhh", "hh_rlhf"), smk.input.feedback))
    summary = pd.read_csv(smk.input.summary)
    paired = pd.read_csv(smk.input.paired)
    gate_numbers, judge_gates = judge_gate_numbers(read_json(smk.input.judge_gate), {
        REFUSAL_TASK: smk.input.judge_validation, **{task: smk.input.judge_canary for task in SCORE_TASKS}})
    numbers = build_numbers(summary, paired, judged, feedback, histories,
                            n_boot=smk.params.bootstrap_samples, judge_gates=judge_gates)
    if smk.input.data_scale:
        per_seed, scale = (pd.read_csv(path) for path in smk.input.data_scale)
        numbers += data_scale_numbers(per_seed, scale, judged_path, smk.params.sweep_eval_sets,
                                      n_boot=smk.params.bootstrap_samples)
    numbers += judge_agreement_numbers(pd.read_csv(smk.input.judge_agreement), smk.input.judge_validation)
    numbers += gate_numbers
    numbers += cost_numbers(smk.input.benchmarks)
    model = read_json(smk.input.model)
    reference = [read_json(path) for path in smk.input.reference_model]  # the instruct reference, when evaluated
    all_judged = [r for path in smk.input.judged for r in read_records(path)]
    refusal_judges = sorted({r["judge"] for r in all_judged if r["task"] == REFUSAL_TASK})
    score_judges = sorted({r["judge"] for r in all_judged if r["task"] != REFUSAL_TASK})
    published = {
        "format": "caibase-published/1",
        "tolerance": {"abs": ABS_TOLERANCE, "note": "|recomputed - published| <= abs, same record count"},
        "meta": {
            "run_name": config["run_name"], "model": model_meta(model),
            "instruct_reference": model_meta(reference[0]) if reference else None,
            "config_sha256": config_sha256(config), "code_version": code_version(),
            "results_code_versions": sorted({r["provenance"]["code_version"] for r in all_judged}),
            "seeds": config["seeds"], "conditions": config["evaluation"]["conditions"], "device": config["device"],
            "judge": ", ".join(refusal_judges), "score_judge": ", ".join(score_judges) or "none",
            "judge_is_proxy": any(r["judge_is_proxy"] for r in all_judged if r["task"] == REFUSAL_TASK),
            "prompts_per_set": prompts_per_set(config["prompts"]),
            "samples_per_prompt": config["evaluation"]["samples_per_prompt"],
            "bootstrap_samples": smk.params.bootstrap_samples, "ci_level": CI_LEVEL,
            "dpo_beta": config["dpo"]["beta"], "dpo_steps": config["dpo"]["max_steps"],
            "critique_rounds": config["critique"]["rounds"],
            "redteam_prompts": sum(config["prompts"].get(k) or 0 for k in ("redteam_limit", "redteam_hh_rlhf")),
            "present": {"Scores": not all(map(is_rate, summary.metric)), "Feedback": bool(feedback),
                        "Paired": not paired.empty, "Dpo": bool(histories), "DataScale": bool(smk.input.data_scale),
                        "Cost": bool(smk.input.benchmarks)},
        },
        "formulas": formula_docs(),
        "numbers": numbers,
    }
    write_json(smk.output.published, published)
    with atomic_path(smk.output.macros) as tmp:
        tmp.write_text(macros_tex(published), encoding="utf-8")
    log.info("published %d numbers", len(numbers))


main(snakemake)  # noqa: F821
