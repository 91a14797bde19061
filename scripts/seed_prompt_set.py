"""One prompt set of the replicated study (`seed-2025:<set>` in the config): its pinned files fetched (or read
from CAI_DATA_MIRROR), checked by sha256, parsed with `ast` (never imported or executed), and written as a
prompt-set JSONL under `prompts.seed_protocol` (held_out: evaluated prompts are not trained on; same_prompts: the
study's choice). Each record names its origin in the study's files (`source`).

    snakemake --cores 1 --configfile config/seed.yaml results/seed-llama32-3b/prompts/seed-2025/jailbreak.jsonl
"""

from caibase.artifacts import write_jsonl
from caibase.runtime import setup
from caibase.seed2025 import prompt_set_records
from caibase.sources import fetched_sources


def main(smk) -> None:
    log = setup(smk.log[0])
    records = prompt_set_records(smk.wildcards.seed_set, smk.params.protocol)
    write_jsonl(smk.output.prompts, records)
    for name, source in fetched_sources().items():
        log.info("%s sha256=%s from %s", name, source["sha256"], source["read_from"])
    log.info("seed-2025:%s under %s: %d prompts", smk.wildcards.seed_set, smk.params.protocol, len(records))


main(snakemake)  # noqa: F821
