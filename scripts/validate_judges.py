"""Each configured judge against reference labels on the refusal task: the labeled JSONL files in
evaluation.judge_validation.labeled and HH-RLHF harmless-base pairs. Writes per-item records and the agreement
table (agreement with Wilson CI, false positive/negative rates, Cohen's kappa, HH-RLHF pairwise agreement).

    snakemake --cores 1 results/embedded-cpu/tables/judge_agreement.csv
"""

from pathlib import Path

import pandas as pd

from caibase.artifacts import write_csv, write_jsonl
from caibase.feedback import hh_rlhf_labeled_pairs
from caibase.judge_validation import check_failures, hh_rlhf_items, load_labeled, validate_judge
from caibase.judges import JudgeCache, JudgeStageError, make_judge
from caibase.runtime import setup
from caibase.sources import hh_rlhf_harmless_rows


def main(smk) -> None:
    log = setup(smk.log[0], smk.threads)
    model_dir = Path(smk.input.model).parent
    settings = smk.params.validation
    datasets = {Path(path).stem: load_labeled(path) for path in smk.input.labeled}
    datasets["hh_rlhf_harmless_base"] = hh_rlhf_items(
        hh_rlhf_labeled_pairs(hh_rlhf_harmless_rows(), settings["hh_rlhf_pairs"]))
    cache = JudgeCache(smk.params.cache_dir, "judge-validation")
    records, rows = [], []
    for cfg in smk.params.judges:
        judge_records, judge_rows = validate_judge(make_judge(cfg, model_dir), datasets, cache)
        records += judge_records
        rows += judge_rows
        log.info("%s", judge_rows)
    try:
        check_failures(records, smk.params.max_failure_share)
    except JudgeStageError as err:
        raise SystemExit(str(err)) from None
    write_jsonl(smk.output.records, records)
    write_csv(pd.DataFrame(rows), smk.output.table)


main(snakemake)  # noqa: F821
