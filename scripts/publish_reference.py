"""Copy the reference run's published numbers and generated paper parts (macros, tables, figures) to
`report.publish_dir` (paper/), to be committed beside main.tex. Paths come from the rule, never through a shell.

    snakemake --cores 1 --configfile config/config.yaml paper/published.json
"""

import shutil
from pathlib import Path

from caibase.artifacts import atomic_path
from caibase.runtime import setup


def main(smk) -> None:
    log = setup(smk.log[0])
    with atomic_path(smk.output.generated, directory=True) as generated:
        shutil.copy(smk.input.macros, Path(generated) / Path(smk.input.macros).name)
        for folder in (smk.input.tables, smk.input.figures):
            shutil.copytree(folder, Path(generated) / Path(folder).name)
    with atomic_path(smk.output.published) as tmp:
        shutil.copy(smk.input.published, tmp)
    log.info("published %s and %s", smk.output.published, smk.output.generated)


main(snakemake)  # noqa: F821
