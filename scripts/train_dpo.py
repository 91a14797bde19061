"""DPO with a fresh LoRA adapter on the SFT policy; the reference is the SFT policy (adapter disabled).

    snakemake --cores 2 results/embedded-cpu/seed1/dpo/adapter
"""

import tempfile
from pathlib import Path

from caibase.artifacts import read_jsonl, write_json
from caibase.models import load_model, load_model_info, load_tokenizer
from caibase.provenance import stamp
from caibase.runtime import setup
from caibase.training import train_dpo


def main(smk) -> None:
    seed = int(smk.wildcards.seed)
    log = setup(smk.log[0], smk.threads, seed)
    config = smk.config
    model_dir = Path(smk.input.model).parent
    pairs = read_jsonl(smk.input.pairs)
    policy = load_model(model_dir, adapters=[smk.input.sft_adapter], dtype=config["model"]["dtype"],
                        device=config["device"])
    with tempfile.TemporaryDirectory() as work:
        train_dpo(policy, load_tokenizer(model_dir), pairs, config["dpo"], seed, Path(smk.output.adapter),
                  Path(smk.output.history), Path(work), device=config["device"])
    write_json(Path(smk.output.adapter) / "caibase.json",
               {"stage": "dpo", "n_pairs": len(pairs), **stamp(config, load_model_info(model_dir), seed)})
    log.info("DPO adapter written to %s (%d pairs)", smk.output.adapter, len(pairs))


main(snakemake)  # noqa: F821
