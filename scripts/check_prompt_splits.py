"""Fail the run if any evaluation prompt is an exact or near duplicate of a training prompt.

    snakemake --cores 1 results/embedded-cpu/checks/prompt_splits.json
"""

from pathlib import Path

from caibase import REPO_ROOT
from caibase.artifacts import write_json
from caibase.prompts import find_contamination, load_prompt_set
from caibase.runtime import setup


def set_entries(sets) -> dict:
    """Each set's path (relative to the checkout, so the record is the same in any clone), split and size."""
    return {s.name: {"path": Path(s.path).resolve().relative_to(REPO_ROOT.resolve()).as_posix()
                     if Path(s.path).resolve().is_relative_to(REPO_ROOT.resolve()) else str(s.path),
                     "split": s.split, "n": len(s.records)} for s in sets}


def main(smk) -> None:
    log = setup(smk.log[0])
    sets = [load_prompt_set(name, path) for name, path in smk.input.items()]
    hits = find_contamination(sets, threshold=smk.params.threshold)
    allowed = smk.params.get("allow_overlap")  # only `prompts.seed_protocol: same_prompts` (the study's choice)
    for hit in hits:
        (log.warning if allowed else log.error)("contaminated: %s/%s ~ %s/%s", hit["train_set"], hit["train_id"],
                                                hit["eval_set"], hit["eval_id"])
    if hits and allowed:
        write_json(smk.output.report, {
            "sets": set_entries(sets),
            "threshold": smk.params.threshold,
            "contaminated_pairs": len(hits),
            "allowed_by": allowed,
            "note": "the replicated study's protocol: evaluation prompts are also training prompts",
        })
        log.warning("%d contaminated pairs, allowed by %s", len(hits), allowed)
        return
    if hits:
        first = hits[0]
        raise SystemExit(
            f"{len(hits)} evaluation prompt(s) duplicate training prompts, e.g. {first['eval_set']}:{first['eval_id']}"
            f" ~ {first['train_set']}:{first['train_id']}"
        )
    write_json(smk.output.report, {
        "sets": set_entries(sets),
        "threshold": smk.params.threshold,
        "contaminated_pairs": 0,
    })
    log.info("no contamination across %d sets", len(sets))


main(snakemake)  # noqa: F821
