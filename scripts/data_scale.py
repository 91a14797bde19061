"""The data-scale sweep's tables: ASR per seed at every point (SFT = 0 pairs, each subsample size, the full pool)
and a per-point summary (mean, sd and a two-way bootstrap 95% CI over seeds and prompts). Capped points (a size
above a seed's pool) are left out with a log line.

    snakemake --cores 1 results/embedded-cpu/tables/data_scale.csv
"""

from pathlib import Path

import pandas as pd

from caibase.artifacts import read_json, read_records, write_csv
from caibase.data_scale import data_scale_tables
from caibase.runtime import setup


def main(smk) -> None:
    log = setup(smk.log[0])
    rows = []
    for point in smk.params.points:
        stamp = read_json(Path(point["adapter"]) / "caibase.json") if point["adapter"] else {"n_pairs": 0}
        if stamp.get("capped"):
            log.warning("seed %s, %s pairs: point %s asks for more pairs than the pool's %d; left out",
                        point["seed"], point["pairs"], point["point"], stamp["pool_size"])
            continue
        rows.append({k: point[k] for k in ("pairs", "point", "seed", "policy")} | {"n_pairs": stamp["n_pairs"]})
    judged = pd.DataFrame([record for path in smk.input.judged for record in read_records(path)
                           if record["prompt_set"] in smk.params.eval_sets]).rename(columns={"id": "prompt_id"})
    per_seed, summary = data_scale_tables(judged, pd.DataFrame(rows), n_boot=smk.params.bootstrap_samples)
    model = read_json(smk.input.model)
    for table, path in ((per_seed, smk.output.per_seed), (summary, smk.output.summary)):
        table["model_id"], table["model_kind"] = model["id"], model["kind"]
        write_csv(table, path)
    log.info("data-scale tables: %d points x seeds, %d summary rows", len(rows), len(summary))


main(snakemake)  # noqa: F821
