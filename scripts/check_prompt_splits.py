"""Fail the run if any evaluation prompt is an exact or near duplicate of a training prompt.

    snakemake --cores 1 results/embedded-cpu/checks/prompt_splits.json
"""

from caibase.artifacts import write_json
from caibase.prompts import load_prompt_set, find_contamination
from caibase.runtime import setup


def main(smk) -> None:
    log = setup(smk.log[0])
    sets = [load_prompt_set(name, path) for name, path in smk.input.items()]
    hits = find_contamination(sets, threshold=smk.params.threshold)
    for hit in hits:
        log.error("contaminated: %s/%s ~ %s/%s", hit["train_set"], hit["train_id"], hit["eval_set"], hit["eval_id"])
    if hits:
        first = hits[0]
        raise SystemExit(
            f"{len(hits)} evaluation prompt(s) duplicate training prompts, e.g. {first['eval_set']}:{first['eval_id']}"
            f" ~ {first['train_set']}:{first['train_id']}"
        )
    write_json(smk.output.report, {
        "sets": {s.name: {"path": str(s.path), "split": s.split, "n": len(s.records)} for s in sets},
        "threshold": smk.params.threshold,
        "contaminated_pairs": 0,
    })
    log.info("no contamination across %d sets", len(sets))


main(snakemake)  # noqa: F821
