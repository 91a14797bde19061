"""Recompute every published number from the raw per-item records and compare with published.json; prints each
number with PASS or FAIL and fails on any FAIL or missing record, or when the paper's macro file is not the one
written from published.json. Run on pulled artifacts, nothing is retrained:

    make verify                       # = snakemake --cores 1 verify --allowed-rules verify --forcerun verify
"""

import sys
from pathlib import Path

from caibase.artifacts import atomic_path, read_json
from caibase.macros import macros_tex
from caibase.published import format_results, verify
from caibase.runtime import setup


def macros_line(published: dict, path: str) -> str:
    """PASS when the paper's macro file is the one written from published.json (the PDF prints those macros)."""
    same = Path(path).is_file() and Path(path).read_text(encoding="utf-8") == macros_tex(published)
    return f"{'PASS' if same else 'FAIL'}  {path}  {'is' if same else 'is not'} the macro file of published.json"


def main(smk) -> None:
    published = read_json(smk.input.published)
    results = verify(published)
    macros = macros_line(published, smk.input.macros)
    report = format_results(results) + "\n" + macros
    print(report, file=sys.__stdout__, flush=True)
    setup(smk.log[0])
    print(report)
    if not results or any(r["status"] != "PASS" for r in results) or macros.startswith("FAIL"):
        sys.exit(f"verify: some published numbers do not match their raw records (see {smk.log[0]})")
    with atomic_path(smk.output.report) as tmp:
        tmp.write_text(report + "\n", encoding="utf-8")


main(snakemake)  # noqa: F821
