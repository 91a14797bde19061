"""Build the paper: paper/*.tex and the run's generated macros, tables and figures, compiled with latexmk in a
scratch directory; the PDF is renamed into place only when the build succeeds.

    snakemake --cores 1 results/embedded-cpu/paper/main.pdf
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from caibase.artifacts import atomic_path
from caibase.runtime import setup


def main(smk) -> None:
    log = setup(smk.log[0])
    if shutil.which("latexmk") is None:
        sys.exit("latexmk not found: install a TeX distribution (Debian: apt-get install texlive-latex-base "
                 "texlive-latex-recommended texlive-fonts-recommended latexmk)")
    source = Path(smk.input.main).parent
    with tempfile.TemporaryDirectory(prefix=".paper.", dir=Path(smk.output.pdf).parent) as build:
        build = Path(build)
        for tex in source.glob("*.tex"):
            shutil.copy(tex, build / tex.name)
        for bib in source.glob("*.bib"):
            shutil.copy(bib, build / bib.name)
        generated = build / "generated"
        generated.mkdir()
        shutil.copy(smk.input.macros, generated / "macros.tex")
        shutil.copytree(smk.input.tables, generated / "tables")
        shutil.copytree(smk.input.figures, generated / "figures")
        # Fixed dates so the same inputs give the same PDF bytes.
        env = {**os.environ, "SOURCE_DATE_EPOCH": "0", "FORCE_SOURCE_DATE": "1"}
        result = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
                                cwd=build, env=env, capture_output=True, text=True, check=False)
        print(result.stdout[-20000:], result.stderr[-5000:], sep="\n")
        if result.returncode != 0:
            sys.exit(f"latexmk failed (exit {result.returncode}); see {smk.log[0]} and main.log above")
        with atomic_path(smk.output.pdf) as tmp:
            shutil.copy(build / "main.pdf", tmp)
    log.info("built %s", smk.output.pdf)


main(snakemake)  # noqa: F821
