"""Revision-vs-original preference pairs (final revision chosen, original response rejected), TRL format.

    snakemake --cores 1 results/embedded-cpu/seed1/pairs/revision.jsonl
"""

from caibase.artifacts import read_jsonl, write_jsonl
from caibase.critique import preference_pairs
from caibase.records import ExcludedPairRecord, PairRecord, check_records
from caibase.runtime import setup
from caibase.vocabulary import REVISION


def main(smk) -> None:
    log = setup(smk.log[0])
    records = read_jsonl(smk.input.revisions)
    pairs, excluded = preference_pairs(records)
    if not pairs:
        raise SystemExit(f"{smk.input.revisions}: no usable preference pairs ({len(excluded)} excluded)")
    provenance = records[0]["provenance"]
    write_jsonl(smk.output.pairs, check_records(
        ({**pair, "source": REVISION, "provenance": provenance} for pair in pairs), PairRecord))
    write_jsonl(smk.output.excluded, check_records(excluded, ExcludedPairRecord))
    log.info("%d pairs, %d excluded", len(pairs), len(excluded))


main(snakemake)  # noqa: F821
