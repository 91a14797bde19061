"""Record the public data this run uses: fetch (and check by sha256) every pinned source the config reads, and write
each one's sha256, upstream repo, commit and path, whether it came from the mirror or upstream, and, for HH-RLHF,
which file (the mirror's 1,992-row subset or the 2,312-row upstream file) and its row count. The file is a
`cache: false` output of dvc.yaml, so the sources are in git and their record's md5 is in dvc.lock.

    snakemake --cores 1 results/embedded-cpu/prompts/sources.json
"""

import os

from caibase.artifacts import write_json
from caibase.constitution import load_constitution
from caibase.provenance import REPO_ROOT
from caibase.runtime import setup
from caibase.sources import fetched_sources, hh_rlhf_harmless_rows, hhh_rows


def main(smk) -> None:
    log = setup(smk.log[0])
    config = smk.params.config
    load_constitution(config["constitution"], REPO_ROOT)  # the paper's prompts, for the `anthropic-2022` constitution
    uses = {"constitution": config["constitution"]}
    if config["feedback"]["validate"]:
        hhh_rows(config["feedback"]["hhh_sample"])
        uses["hhh"] = f"feedback validation, sample {config['feedback']['hhh_sample']}"
    hh_rlhf_users = [use for use, wanted in (
        ("red-team prompts", config["prompts"].get("redteam_hh_rlhf")),
        ("feedback validation pairs", config["feedback"]["validate"]),
        ("judge validation pairs", config["evaluation"]["judge_validation"].get("hh_rlhf_pairs")),
    ) if wanted]
    if hh_rlhf_users:
        hh_rlhf_harmless_rows()
        uses["hh_rlhf"] = (", ".join(hh_rlhf_users)
                           + "; rows selected in the stable order of caibase.prompts.hh_rlhf_key")
    sources = fetched_sources()
    write_json(smk.output.sources, {"mirror": bool(os.environ.get("CAI_DATA_MIRROR")), "uses": uses,
                                    "sources": sources})
    for name, source in sources.items():
        log.info("%s sha256=%s from %s", name, source["sha256"], source["read_from"])


main(snakemake)  # noqa: F821
