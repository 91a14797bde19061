"""Helpful-only SFT: LoRA on human-written demonstrations, in the base-model `Human:/Assistant:` format.

    snakemake --cores 2 results/embedded-cpu/seed1/sft/adapter
"""

import tempfile
from pathlib import Path

from caibase.artifacts import write_json
from caibase.critique import dialogue_prompt
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
    model = load_model(model_dir, dtype=config["model"]["dtype"], device=config["device"])
    with tempfile.TemporaryDirectory() as work:
        train_sft(model, load_tokenizer(model_dir), records, config["sft"], seed, Path(smk.output.adapter),
                  Path(smk.output.history), Path(work), device=config["device"])
    write_json(Path(smk.output.adapter) / "caibase.json",
               {"stage": "sft", "n_examples": len(records), **stamp(config, load_model_info(model_dir), seed)})
    log.info("SFT adapter written to %s", smk.output.adapter)


main(snakemake)  # noqa: F821
