"""Recompute every published number from the raw per-item records and compare with published.json; prints each
number with PASS or FAIL and fails on any FAIL or missing record. Run on pulled artifacts, nothing is retrained:

    make verify                       # = snakemake --cores 1 verify --allowed-rules verify --forcerun verify
"""

import sys

from caibase.artifacts import atomic_path, read_json
from caibase.published import format_results, verify
from caibase.runtime import setup


def main(smk) -> None:
    results = verify(read_json(smk.input.published))
    report = format_results(results)
    print(report, file=sys.__stdout__, flush=True)
    setup(smk.log[0])
    print(report)
    if not results or any(r["status"] != "PASS" for r in results):
        sys.exit(f"verify: some published numbers do not match their raw records (see {smk.log[0]})")
    with atomic_path(smk.output.report) as tmp:
        tmp.write_text(report + "\n", encoding="utf-8")


main(snakemake)  # noqa: F821
