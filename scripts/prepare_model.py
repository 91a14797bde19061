"""Resolve the configured model into results/<run>/model/ (weights + model_info.json with its sha256).

    snakemake --cores 2 results/embedded-cpu/model/model_info.json
"""

from pathlib import Path

from caibase.models import prepare_model
from caibase.runtime import setup


def main(smk) -> None:
    log = setup(smk.log[0], smk.threads)
    info = prepare_model(smk.params.config["model"], Path(smk.output.info).parent)
    log.info("prepared %s (%s, kind=%s) sha256=%s", info["id"], info["source"], info["kind"], info["sha256"])


main(snakemake)  # noqa: F821 - injected by Snakemake's script directive
