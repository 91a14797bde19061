"""Tables (CSV + LaTeX booktabs) from the published numbers, and figures (PDF + PNG) from them and the raw logs.

    snakemake --cores 1 results/embedded-cpu/paper/generated/figures
"""

from pathlib import Path

import pandas as pd

from caibase.artifacts import atomic_path, read_json
from caibase.figures import write_figures
from caibase.runtime import setup
from caibase.tables import write_tables


def main(smk) -> None:
    log = setup(smk.log[0])
    published = read_json(smk.input.published)
    histories = smk.params.histories_of  # pairs -> {seed label: DPO history} (input.histories)
    feedback = dict(zip(("hhh", "hh_rlhf"), smk.input.feedback))
    data_scale = pd.read_csv(smk.input.data_scale[1]) if smk.input.data_scale else None  # [per seed, summary]
    with atomic_path(smk.output.tables, directory=True) as tables:
        written = write_tables(published, Path(tables), data_scale)
    with atomic_path(smk.output.figures, directory=True) as figures:
        written += write_figures(published, pd.read_csv(smk.input.summary), histories, feedback, Path(figures),
                                 data_scale)
    log.info("wrote %s", ", ".join(written))


main(snakemake)  # noqa: F821
