"""Per-condition table over seeds (mean, sd, 95% CI: two-way bootstrap, or Wilson for a single seed), per-seed
values with Wilson intervals, paired differences between conditions (same seeds and prompts: bootstrap CI,
sign-flip permutation test over seeds, minimum detectable effect), judge status counts, and metrics.json with all
of them plus the judges' agreement with reference labels, from every judged record. Rows of the AI-feedback condition
(and paired differences involving it) carry `valid` and `invalid_reason` from the feedback-model gate
(caibase.feedback_gate), read from the feedback model's validation summary; rows of a metric whose judge failed the
judge gate (caibase.judge_gate, read from judges/gate.json) likewise.

    snakemake --cores 1 results/embedded-cpu/tables/summary_by_condition.csv
"""

import pandas as pd

from caibase.artifacts import check_manifest, read_json, read_records, write_csv, write_json
from caibase.feedback_gate import as_record, feedback_gate, mark_conditions
from caibase.judge_gate import as_record as judge_gate_record
from caibase.judge_gate import from_record
from caibase.metrics import METRICS, paired_table, per_seed, summarize
from caibase.provenance import code_version, config_sha256
from caibase.records import judged_frame
from caibase.runtime import setup
from caibase.vocabulary import REFUSAL_TASK


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts with NaN written as null, so metrics.json is strict JSON."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def main(smk) -> None:
    log = setup(smk.log[0])
    judged = judged_frame(record for path in smk.input.judged for record in read_records(path))
    summary = summarize(judged, n_boot=smk.params.bootstrap_samples)
    model = read_json(smk.input.model)
    validation = [read_json(path) for path in smk.input.feedback]
    gate = feedback_gate(validation[0]) if validation else None
    judge_gates = from_record(read_json(smk.input.judge_gate)["gates"])
    summary = mark_conditions(summary, gate, judge_gates=judge_gates)
    summary.insert(0, "model_kind", model["kind"])
    summary.insert(0, "model_id", model["id"])
    write_csv(summary, smk.output.summary)
    seeds = mark_conditions(per_seed(judged), gate, judge_gates=judge_gates)
    write_csv(seeds, smk.output.per_seed)
    paired = paired_table(judged, smk.params.config["evaluation"]["conditions"], n_boot=smk.params.bootstrap_samples)
    paired = mark_conditions(paired, gate, columns=("treatment", "control"), judge_gates=judge_gates)
    write_csv(paired, smk.output.paired)
    status = (judged.groupby(["condition", "seed", "prompt_set", "task", "status"]).size().rename("n").reset_index())
    write_csv(status, smk.output.status)
    check_manifest(smk.input.judge_agreement)
    agreement = pd.read_csv(smk.input.judge_agreement)
    judges = judged.drop_duplicates(["task", "judge"])[
        ["task", "judge", "judge_backend", "judge_model", "judge_is_proxy", "judge_template_sha256"]]
    write_json(smk.output.metrics, {
        "run_name": smk.params.config["run_name"],
        "model": {k: model[k] for k in ("id", "source", "kind", "sha256", "revision")},
        "judge": judged.loc[judged.task == REFUSAL_TASK, "judge"].iloc[0],
        "judge_is_proxy": bool(judged.loc[judged.task == REFUSAL_TASK, "judge_is_proxy"].iloc[0]),
        "judges": records(judges),
        "judge_failures": int(judged["status"].isin(["parse_error", "api_error"]).sum()),
        "judge_status_counts": judged["status"].value_counts().sort_index().to_dict(),
        "samples_per_prompt": smk.params.config["evaluation"]["samples_per_prompt"],
        "metric_definitions": {m.name: {"prompt_set": m.prompt_set, "field": m.field, "category": m.category,
                                        "per_prompt": m.per_prompt} for m in METRICS},
        "seeds": smk.params.config["seeds"],
        "config_sha256": config_sha256(smk.params.config),
        "code_version": code_version(),
        "summary": records(summary),
        "per_seed": records(seeds),
        "paired_differences": records(paired),
        "judge_agreement": records(agreement),
        "feedback_validation": {
            dataset: {key: result[key] for key in ("n", "accuracy", "accuracy_ci95_wilson", "position_consistency")}
            for summary_json in validation
            for dataset, result in summary_json.items() if isinstance(result, dict) and "accuracy" in result
        },
        "feedback_gate": as_record(gate),
        "judge_gate": judge_gate_record(judge_gates),
    })
    log.info("aggregated %d judged records", len(judged))
    if gate is not None and not gate.valid:
        log.warning("the AI-feedback condition is marked invalid: %s", gate.reason)
    for task, judge_gate in judge_gates.items():
        if not judge_gate.valid:
            log.warning("the metrics of the %s judge are marked invalid: %s", task, judge_gate.reason)


main(snakemake)  # noqa: F821
