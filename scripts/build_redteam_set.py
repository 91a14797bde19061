"""The red-team training set of this run: our prompts (first `prompts.redteam_limit`), plus, when
`prompts.redteam_hh_rlhf` is set, that many first Human turns from HH-RLHF harmless-base (pinned upstream file or
the CAI_DATA_MIRROR copy), minus any that near-duplicate an evaluation prompt.

    snakemake --cores 1 results/embedded-cpu/prompts/redteam_train.jsonl
"""

from caibase.artifacts import write_jsonl
from caibase.prompts import hh_rlhf_redteam_records, load_prompt_set
from caibase.runtime import setup
from caibase.sources import hh_rlhf_harmless_rows


def main(smk) -> None:
    log = setup(smk.log[0])
    ours = list(load_prompt_set("redteam_train", smk.input.redteam).records)
    records = ours[: smk.params.limit] if smk.params.limit else ours
    if smk.params.hh_rlhf:
        evaluation = [load_prompt_set(name, path)
                      for name, path in zip(smk.params.eval_names, smk.input.eval_sets, strict=True)]
        extra, dropped = hh_rlhf_redteam_records(hh_rlhf_harmless_rows(), smk.params.hh_rlhf, evaluation,
                                                 smk.params.threshold)
        for item in dropped:
            log.info("dropped HH-RLHF row %d, near duplicate of %s", item["row"], item["near_duplicate_of"])
        records += extra
        log.info("%d HH-RLHF prompts added, %d dropped", len(extra), len(dropped))
    write_jsonl(smk.output.prompts, records)
    log.info("red-team training set: %d prompts", len(records))


main(snakemake)  # noqa: F821
