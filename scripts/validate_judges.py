"""Each configured judge against reference labels on the refusal task: the labeled JSONL files in
evaluation.judge_validation.labeled and HH-RLHF harmless-base pairs. Writes per-item records and the agreement
table (agreement with Wilson CI, false positive/negative rates, Cohen's kappa, HH-RLHF pairwise agreement). Then the
score judge on the score canary (clearly better vs clearly worse replies), and the judge gate (caibase.judge_gate):
with `evaluation.judge_gate.on_fail: fail` the job fails, after logging the numbers, when a judge does not pass.

    snakemake --cores 1 results/embedded-cpu/tables/judge_agreement.csv
"""

from pathlib import Path

import pandas as pd

from caibase.artifacts import write_csv, write_json, write_jsonl
from caibase.feedback import hh_rlhf_labeled_pairs
from caibase.judge_gate import REFUSAL_TASK, SCORE_TASKS, JudgeGateError, as_record, enforce, gates_from_records
from caibase.judge_validation import (
    check_failures,
    hh_rlhf_items,
    load_canary,
    load_labeled,
    score_canary,
    validate_judge,
)
from caibase.judges import JudgeCache, JudgeStageError, make_judge
from caibase.records import CanaryRecord, JudgeValidationRecord, check_records
from caibase.runtime import setup
from caibase.sources import hh_rlhf_harmless_rows


def main(smk) -> None:
    log = setup(smk.log[0], smk.threads)
    model_dir = Path(smk.input.model).parent
    settings = smk.params.validation
    runtime = {"dtype": smk.params.config["model"]["dtype"], "device": smk.params.config["device"]}
    labeled = {Path(path).stem: load_labeled(path) for path in smk.input.labeled}
    canary = load_canary(smk.input.canary) if smk.params.score_judge else []
    datasets = {**labeled, "hh_rlhf_harmless_base": hh_rlhf_items(
        hh_rlhf_labeled_pairs(hh_rlhf_harmless_rows(), settings["hh_rlhf_pairs"]))}
    cache = JudgeCache(smk.params.cache_dir, "judge-validation")
    judges = {}  # one instance per judge config: the score judge may also be validated on refusals
    records, rows = [], []
    for cfg in smk.params.judges:
        judge = judges.setdefault(repr(cfg), make_judge(cfg, model_dir, **runtime))
        judge_records, judge_rows = validate_judge(judge, datasets, cache)
        records += judge_records
        rows += judge_rows
        log.info("%s", judge_rows)
    refusal_judge = judges[repr(smk.params.refusal_judge)]
    canary_records = []
    if smk.params.score_judge:
        score_judge = (judges.get(repr(smk.params.score_judge))
                       or make_judge(smk.params.score_judge, model_dir, **runtime))
        canary_records = score_canary(score_judge, canary, cache)
    try:
        check_failures(records, smk.params.max_failure_share)
    except JudgeStageError as err:
        raise SystemExit(str(err)) from None
    gates = gates_from_records(records, canary_records, {
        REFUSAL_TASK: refusal_judge.name, **({task: score_judge.name for task in SCORE_TASKS}
                                             if smk.params.score_judge else {})}, list(labeled))
    write_jsonl(smk.output.records, check_records(records, JudgeValidationRecord))
    write_jsonl(smk.output.canary, check_records(canary_records, CanaryRecord))
    write_csv(pd.DataFrame(rows), smk.output.table)
    write_json(smk.output.gate, {"on_fail": smk.params.gate["on_fail"], "gates": as_record(gates)})
    for task, gate in gates.items():
        log.info("judge gate, %s: %s", task, "passed" if gate.valid else f"not passed, {gate.reason}")
    try:
        enforce(gates, smk.params.gate["on_fail"])
    except JudgeGateError as err:
        log.error("%s", err)
        raise


main(snakemake)  # noqa: F821
