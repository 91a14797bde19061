"""SFT with LoRA from the prepared model, in the base-model `Human:/Assistant:` format. Two rules use it:
helpful-only SFT (human-written demonstrations) and SL-CAI SFT (the same demonstrations mixed with revisions).

    snakemake --cores 2 results/embedded-cpu/seed1/sft/adapter
    snakemake --cores 2 results/embedded-cpu/seed1/slcai/adapter
"""

import tempfile
from pathlib import Path

from caibase.artifacts import write_json
from caibase.artifacts import read_jsonl
from caibase.critique import dialogue_prompt, slcai_sft_records
from caibase.models import load_model, load_model_info, load_tokenizer
from caibase.prompts import load_prompt_set
from caibase.provenance import stamp
from caibase.runtime import setup
from caibase.training import train_sft


def main(smk) -> None:
    seed = int(smk.wildcards.seed)
    log = setup(smk.log[0], smk.threads, seed)
    config = smk.config
    model_dir = Path(smk.input.model).parent
    demos = load_prompt_set("helpful_sft", smk.input.demonstrations, require=("response",))
    records = [{"prompt": dialogue_prompt(d["prompt"]), "completion": " " + d["response"].strip()} for d in demos.records]
    n_revisions = 0
    if "revisions" in smk.input.keys():
        revisions = slcai_sft_records(read_jsonl(smk.input.revisions), smk.params.all_revisions)
        n_revisions = len(revisions)
        records += revisions
    model = load_model(model_dir, dtype=config["model"]["dtype"], device=config["device"])
    with tempfile.TemporaryDirectory() as work:
        train_sft(model, load_tokenizer(model_dir), records, smk.params.trainer, seed, Path(smk.output.adapter),
                  Path(smk.output.history), Path(work), device=config["device"],
                  dtype=config["model"]["dtype"])
    write_json(Path(smk.output.adapter) / "caibase.json",
               {"stage": smk.rule, "n_examples": len(records), "n_revisions": n_revisions, **stamp(config, load_model_info(model_dir), seed)})
    log.info("%s adapter written to %s (%d examples, %d revisions)", smk.rule, smk.output.adapter, len(records),
             n_revisions)


main(snakemake)  # noqa: F821
