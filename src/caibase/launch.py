"""How a training stage runs: in the Snakemake job's own process (`training.launcher: python`, the default) or on
several GPUs under `accelerate launch` (`training.launcher: accelerate`).

Both paths run the same stage function (caibase.training's sft_stage or dpo_stage) on a job description (the rule's
inputs, outputs, params, seed and config as JSON). Under accelerate the Snakemake job writes that description to a
file and starts

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


def run_stage(job: dict, log) -> None:
    """Run the job's stage (caibase.training's sft_stage or dpo_stage) in this process."""
    from caibase.training import dpo_stage, sft_stage

    {"sft": sft_stage, "dpo": dpo_stage}[job["stage"]](job, log)


def run_training(job: dict) -> None:
    """Run a training job as the config's `training.launcher` says; logs go to the job's log file."""
    config = job["config"]
    if config["training"]["report_to"] == "tensorboard":  # event files beside the job's log, written offline
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(Path(job["log"]).with_suffix(".tensorboard"))
    if config["training"]["launcher"] == "python":
        log = setup(job["log"], job["threads"], job["seed"])
        run_stage(job, log)
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


def main(argv: list[str] | None = None) -> None:
    """Entry point of one accelerate process: `python -m caibase.launch JOB.json`."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit("usage: python -m caibase.launch JOB.json  (written by a Snakemake training rule)")
    job = json.loads(Path(argv[0]).read_text())
    log = setup(None, job["threads"], job["seed"])
    run_stage(job, log)


if __name__ == "__main__":
    main()
