"""SL-CAI: critique and revise the SFT policy's red-team responses for N rounds, one sampled principle per round.

    snakemake --cores 2 results/embedded-cpu/seed1/slcai/revisions.jsonl
"""

import shutil
from pathlib import Path

from caibase.artifacts import read_jsonl, write_json, write_jsonl
from caibase.backends import load_generation_model
from caibase.config import sampling_settings
from caibase.constitution import load_constitution
from caibase.critique import critique_and_revise, degenerate_summary
from caibase.generation import shard_identity
from caibase.models import load_model_info, load_tokenizer
from caibase.provenance import REPO_ROOT, stamp
from caibase.records import RevisionRecord, check_records
from caibase.runtime import setup


def main(smk) -> None:
    seed = int(smk.wildcards.seed)
    log = setup(smk.log[0], smk.threads, seed)
    config, critique_cfg = smk.params.config, smk.params.config["critique"]
    model_dir = Path(smk.input.model).parent
    constitution = load_constitution(config["constitution"], REPO_ROOT)
    responses = [r for r in read_jsonl(smk.input.responses) if r["sample"] == 0]
    backend = config["generation"]["backend"]
    model = load_generation_model(model_dir, adapters=smk.input.adapters, dtype=config["model"]["dtype"],
                                  device=config["device"], backend=backend, seed=seed)
    shards = Path(f"{smk.output.revisions}.shards")  # finished batches; a rerun resumes from them
    shards.mkdir(parents=True, exist_ok=True)
    records = critique_and_revise(
        model, load_tokenizer(model_dir), responses, constitution, rounds=critique_cfg["rounds"],
        fewshot_examples=critique_cfg["fewshot_examples"], settings=sampling_settings(critique_cfg["sampling"]),
        seed=seed, shard_dir=shards, identity=shard_identity(model_dir, smk.input.adapters, backend),
    )
    summary = degenerate_summary(records)
    log.info("degenerate outputs: %s", summary)
    if summary["final_revision_degenerate_share"] > critique_cfg["max_degenerate_share"]:
        raise SystemExit(
            f"{summary['final_revision_degenerate']}/{summary['n']} final revisions are degenerate, more than "
            f"critique.max_degenerate_share={critique_cfg['max_degenerate_share']}; per-round counts: "
            f"{summary['rounds']}"
        )
    provenance = stamp(config, load_model_info(model_dir), seed)
    write_jsonl(smk.output.revisions, check_records((
        {**record, "seed": seed, "constitution": constitution.name,
         "generation": {**critique_cfg["sampling"], "backend": backend},
         "provenance": provenance}
        for record in records
    ), RevisionRecord))
    write_json(smk.output.summary, {**summary, "seed": seed, "provenance": provenance})
    shutil.rmtree(shards)
    log.info("%d prompts critiqued and revised for %d rounds", len(records), critique_cfg["rounds"])


main(snakemake)  # noqa: F821
