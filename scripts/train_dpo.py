"""DPO with a fresh LoRA adapter on the SFT policy; the reference is the SFT policy (adapter disabled). Pairs are
revision-vs-original or AI-feedback; soft AI-feedback labels set TRL's label_smoothing to the mean 1 - p(chosen).
A data-scale sweep point (`params.n_pairs`) trains on a nested subsample of the same training pool.

    snakemake --cores 2 results/embedded-cpu/seed1/dpo/revision/adapter
    snakemake --cores 2 results/embedded-cpu/seed1/dpo/ai-feedback/adapter
    snakemake --cores 2 results/embedded-cpu/seed1/dpo/revision/n8/adapter   # sweep point: 8 pairs
"""

import tempfile
from pathlib import Path

from caibase.artifacts import read_jsonl, write_json
from caibase.data_scale import nested_subsample, scaled_schedule
from caibase.models import load_model, load_model_info, load_tokenizer
from caibase.provenance import stamp
from caibase.runtime import setup
from caibase.training import split_dev, train_dpo


def main(smk) -> None:
    seed = int(smk.wildcards.seed)
    log = setup(smk.log[0], smk.threads, seed)
    config = smk.config
    model_dir = Path(smk.input.model).parent
    pairs, dev = split_dev(read_jsonl(smk.input.pairs), config["dpo"]["dev_fraction"], seed)
    trainer_cfg = dict(config["dpo"])
    sweep = {}
    n_requested = getattr(smk.params, "n_pairs", None)
    if n_requested is not None:
        pool_size = len(pairs)
        pairs = nested_subsample(pairs, n_requested, seed)
        trainer_cfg = scaled_schedule(trainer_cfg, len(pairs), pool_size, config["dpo"]["sweep"]["schedule"])
        sweep = {"n_requested": n_requested, "pool_size": pool_size, "capped": n_requested > pool_size,
                 "max_steps": trainer_cfg["max_steps"], "pair_ids": [p["id"] for p in pairs]}
        if sweep["capped"]:
            log.warning("data-scale point n=%d: the %s pool of seed %d has only %d training pairs; capped to the "
                        "pool (this point is left out of the data-scale tables)", n_requested,
                        smk.wildcards.pairs, seed, pool_size)
        log.info("data-scale point: %d of %d pairs, %d steps (%s)", len(pairs), pool_size,
                 trainer_cfg["max_steps"], config["dpo"]["sweep"]["schedule"])
    if "p_chosen" in pairs[0] and trainer_cfg["soft_labels"] == "label_smoothing":
        # cDPO needs label_smoothing < 0.5; labels of exactly 0.5 carry no preference
        trainer_cfg["label_smoothing"] = min(sum(1 - p["p_chosen"] for p in pairs) / len(pairs), 0.49)
        log.info("soft labels: label_smoothing=%.4f", trainer_cfg["label_smoothing"])
    policy = load_model(model_dir, adapters=[smk.input.sft_adapter], dtype=config["model"]["dtype"],
                        device=config["device"])
    with tempfile.TemporaryDirectory() as work:
        train_dpo(policy, load_tokenizer(model_dir), pairs, trainer_cfg, seed, Path(smk.output.adapter),
                  Path(smk.output.history), Path(work), device=config["device"],
                  dtype=config["model"]["dtype"], dev_pairs=dev)
    write_json(Path(smk.output.adapter) / "caibase.json",
               {"stage": "dpo", "pairs": smk.wildcards.pairs, "n_pairs": len(pairs), "n_dev_pairs": len(dev),
                "label_smoothing": trainer_cfg.get("label_smoothing", 0.0), **sweep,
                **stamp(config, load_model_info(model_dir), seed)})
    log.info("DPO adapter written to %s (%d pairs)", smk.output.adapter, len(pairs))


main(snakemake)  # noqa: F821
