"""SL-CAI: critique and revise the SFT policy's red-team responses for N rounds, one sampled principle per round.

    snakemake --cores 2 results/embedded-cpu/seed1/slcai/revisions.jsonl
"""

from pathlib import Path

from caibase.artifacts import read_jsonl, write_jsonl
from caibase.config import sampling_settings
from caibase.constitution import load_constitution
from caibase.critique import critique_and_revise
from caibase.models import load_model, load_model_info, load_tokenizer
from caibase.provenance import REPO_ROOT, stamp
from caibase.runtime import setup


def main(smk) -> None:
    seed = int(smk.wildcards.seed)
    log = setup(smk.log[0], smk.threads, seed)
    config, critique_cfg = smk.config, smk.config["critique"]
    model_dir = Path(smk.input.model).parent
    constitution = load_constitution(config["constitution"], REPO_ROOT)
    responses = read_jsonl(smk.input.responses)
    model = load_model(model_dir, adapters=smk.input.adapters, dtype=config["model"]["dtype"], device=config["device"])
    records = critique_and_revise(
        model, load_tokenizer(model_dir), responses, constitution, rounds=critique_cfg["rounds"],
        fewshot_examples=critique_cfg["fewshot_examples"], settings=sampling_settings(critique_cfg["sampling"]),
        seed=seed,
    )
    provenance = stamp(config, load_model_info(model_dir), seed)
    write_jsonl(smk.output.revisions, (
        {**record, "seed": seed, "constitution": constitution.name, "generation": critique_cfg["sampling"],
         "provenance": provenance}
        for record in records
    ))
    log.info("%d prompts critiqued and revised for %d rounds", len(records), critique_cfg["rounds"])


main(snakemake)  # noqa: F821
