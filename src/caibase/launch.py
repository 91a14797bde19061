"""How a training stage runs: in the Snakemake job's own process (`training.launcher: python`, the default) or on
several GPUs under `accelerate launch` (`training.launcher: accelerate`).

Both paths run the same stage function on a job description (the rule's inputs, outputs, params, seed and config
as JSON). Under accelerate the Snakemake job writes that description to a file and starts

    python -m accelerate.commands.launch --config_file workflow/accelerate/ddp.yaml --num_processes 4 \\
        -m caibase.launch JOB.json

which runs the stage once per process; TRL's trainers shard the data across processes, and only the main process
writes the adapter, the history and the provenance stamp. The global batch is
batch_size x gradient_accumulation_steps x num_processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from caibase.artifacts import read_jsonl, write_json
from caibase.config import REPO_ROOT
from caibase.runtime import setup


class LaunchError(RuntimeError):
    pass


def training_job(smk, stage: str) -> dict:
    """A JSON-serialisable description of a Snakemake training job (`stage`: sft or dpo)."""
    return {
        "stage": stage,
        "rule": smk.rule,
        "seed": int(smk.wildcards.seed),
        "threads": smk.threads,
        "log": smk.log[0],
        "wildcards": dict(smk.wildcards.items()),
        "input": dict(smk.input.items()),
        "output": dict(smk.output.items()),
        "params": dict(smk.params.items()),
        "config": smk.params.config,
    }


def accelerate_command(job_file: str | os.PathLike, config: dict, repo: Path = REPO_ROOT) -> list[str]:
    """The `accelerate launch` command line that runs a job file on `training.num_processes` processes."""
    training = config["training"]
    command = [sys.executable, "-m", "accelerate.commands.launch",
               "--config_file", str(repo / training["accelerate_config"]),
               "--num_processes", str(training["num_processes"])]
    if config["device"] == "cpu":
        command.append("--cpu")
    return [*command, "-m", "caibase.launch", str(job_file)]


def run_training(job: dict) -> None:
    """Run a training job as the config's `training.launcher` says; logs go to the job's log file."""
    config = job["config"]
    if config["training"]["report_to"] == "tensorboard":  # event files beside the job's log, written offline
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(job["log"]).with_suffix(".tensorboard"))
    if config["training"]["launcher"] == "python":
        log = setup(job["log"], job["threads"], job["seed"])
        STAGES[job["stage"]](job, log)
        return
    log = setup(job["log"])
    with tempfile.TemporaryDirectory(prefix="caibase-launch-") as tmp:
        job_file = Path(tmp) / "job.json"
        job_file.write_text(json.dumps(job), encoding="utf-8")
        command = accelerate_command(job_file, config)
        log.info("launching: %s", " ".join(command))
        sys.stdout.flush()
        # every process writes to this job's log (stdout and stderr are the log file here)
        result = subprocess.run(command, stdout=sys.stdout, stderr=sys.stderr, check=False)
    if result.returncode != 0:
        raise LaunchError(f"accelerate launch of {job['rule']} (seed {job['seed']}) exited with "
                          f"{result.returncode}; see {job['log']}")
    missing = [path for path in job["output"].values() if not Path(path).exists()]
    if missing:
        raise LaunchError(f"accelerate launch of {job['rule']} finished without writing {', '.join(missing)}")


def _device(config: dict) -> str:
    """This process's device: under a multi-GPU launch, the GPU of its local rank."""
    if config["device"] == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return config["device"]


def _launch_record(config: dict, trainer) -> dict:
    """Recorded beside the adapter when the run used several processes; empty for the default launcher."""
    if config["training"]["launcher"] == "python":
        return {}
    return {"launcher": "accelerate", "num_processes": trainer.accelerator.num_processes,
            "accelerate_config": config["training"]["accelerate_config"]}


def sft_stage(job: dict, log) -> None:
    """SFT with LoRA from the prepared model (helpful-only SFT, or SL-CAI SFT when the job has revisions)."""
    from caibase.models import check_training_model, load_model, load_model_info, load_tokenizer
    from caibase.prompts import dialogue_prompt, load_prompt_set, slcai_sft_records
    from caibase.provenance import stamp
    from caibase.training import train_sft

    seed, config, inputs, outputs = job["seed"], job["config"], job["input"], job["output"]
    model_dir = Path(inputs["model"]).parent
    check_training_model(model_dir)  # a model declared base that looks instruction-tuned is refused here
    demos = load_prompt_set("helpful_sft", inputs["demonstrations"], require=("response",))
    records = [{"prompt": dialogue_prompt(d["prompt"]), "completion": " " + d["response"].strip()}
               for d in demos.records]
    n_revisions = 0
    if "revisions" in inputs:
        revisions = slcai_sft_records(read_jsonl(inputs["revisions"]), job["params"]["all_revisions"])
        n_revisions = len(revisions)
        records += revisions
    model = load_model(model_dir, dtype=config["model"]["dtype"], device=_device(config))
    with tempfile.TemporaryDirectory() as work:
        trainer_cfg = {**job["params"]["trainer"], "report_to": config["training"]["report_to"]}
        trainer = train_sft(model, load_tokenizer(model_dir), records, trainer_cfg, seed,
                            Path(outputs["adapter"]), Path(outputs["history"]), Path(work),
                            device=config["device"], dtype=config["model"]["dtype"])
    if trainer.accelerator.is_main_process:
        write_json(Path(outputs["adapter"]) / "caibase.json",
                   {"stage": job["rule"], "n_examples": len(records), "n_revisions": n_revisions,
                    **_launch_record(config, trainer), **stamp(config, load_model_info(model_dir), seed)})
    log.info("%s adapter written to %s (%d examples, %d revisions)", job["rule"], outputs["adapter"], len(records),
             n_revisions)


def dpo_stage(job: dict, log) -> None:
    """DPO with a fresh LoRA adapter on the SFT policy. AI-feedback pairs keep their soft label `p_chosen`, and
    `dpo.soft_labels: cdpo` trains each pair on the conservative DPO loss with eps = 1 - p_chosen (caibase.cdpo);
    `hard` drops the labels (ordinary DPO on the chosen/rejected direction). Revision pairs are hard pairs."""
    from caibase.data_scale import nested_subsample, scaled_schedule
    from caibase.models import check_training_model, load_model, load_model_info, load_tokenizer
    from caibase.provenance import stamp
    from caibase.training import split_dev, train_dpo, with_soft_labels

    seed, config, inputs, outputs = job["seed"], job["config"], job["input"], job["output"]
    model_dir = Path(inputs["model"]).parent
    check_training_model(model_dir)  # a model declared base that looks instruction-tuned is refused here
    records = read_jsonl(inputs["pairs"])
    if not records:
        raise LaunchError(f"{inputs['pairs']} holds no pairs: nothing to train DPO on (seed {seed})")
    pairs, dev = split_dev(with_soft_labels(records, config["dpo"]["soft_labels"]), config["dpo"]["dev_fraction"],
                           seed)
    trainer_cfg = {**config["dpo"], "report_to": config["training"]["report_to"]}
    sweep = {}
    n_requested = job["params"].get("n_pairs")
    if n_requested is not None:  # a data-scale sweep point: a nested subsample of the training pool
        pool_size = len(pairs)
        pairs = nested_subsample(pairs, n_requested, seed)
        trainer_cfg = scaled_schedule(trainer_cfg, len(pairs), pool_size, config["dpo"]["sweep"]["schedule"])
        sweep = {"n_requested": n_requested, "pool_size": pool_size, "capped": n_requested > pool_size,
                 "max_steps": trainer_cfg["max_steps"], "pair_ids": [p["id"] for p in pairs]}
        if sweep["capped"]:
            log.warning("data-scale point n=%d: the %s pool of seed %d has only %d training pairs; capped to the "
                        "pool (this point is left out of the data-scale tables)", n_requested,
                        job["wildcards"]["pairs"], seed, pool_size)
        log.info("data-scale point: %d of %d pairs, %d steps (%s)", len(pairs), pool_size,
                 trainer_cfg["max_steps"], config["dpo"]["sweep"]["schedule"])
    eps = [1 - p.get("p_chosen", 1.0) for p in pairs]
    labels = {"soft_labels": config["dpo"]["soft_labels"], "n_soft_pairs": sum(e > 0 for e in eps),
              "mean_label_smoothing": sum(eps) / len(eps)}
    log.info("labels: %d of %d training pairs soft (per-pair cDPO), mean eps = 1 - p_chosen %.4f",
             labels["n_soft_pairs"], len(pairs), labels["mean_label_smoothing"])
    policy = load_model(model_dir, adapters=[inputs["sft_adapter"]], dtype=config["model"]["dtype"],
                        device=_device(config))
    with tempfile.TemporaryDirectory() as work:
        trainer = train_dpo(policy, load_tokenizer(model_dir), pairs, trainer_cfg, seed, Path(outputs["adapter"]),
                            Path(outputs["history"]), Path(work), device=config["device"],
                            dtype=config["model"]["dtype"], dev_pairs=dev)
    if trainer.accelerator.is_main_process:
        write_json(Path(outputs["adapter"]) / "caibase.json",
                   {"stage": "dpo", "pairs": job["wildcards"]["pairs"], "n_pairs": len(pairs),
                    "n_dev_pairs": len(dev), **labels, **sweep,
                    **_launch_record(config, trainer), **stamp(config, load_model_info(model_dir), seed)})
    log.info("DPO adapter written to %s (%d pairs)", outputs["adapter"], len(pairs))


STAGES = {"sft": sft_stage, "dpo": dpo_stage}


def main(argv: list[str] | None = None) -> None:
    """Entry point of one accelerate process: `python -m caibase.launch JOB.json`."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m caibase.launch JOB.json  (written by a Snakemake training rule)")
    job = json.loads(Path(argv[0]).read_text())
    log = setup(None, job["threads"], job["seed"])
    STAGES[job["stage"]](job, log)


if __name__ == "__main__":
    main()
