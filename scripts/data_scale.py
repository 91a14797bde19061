"""The data-scale sweep's tables: ASR per seed at every point (SFT = 0 pairs, each subsample size, the full pool)
and a per-point summary (mean, sd and a two-way bootstrap 95% CI over seeds and prompts). Capped points (a size
above a seed's pool) are left out with a log line. Rows carry `valid` and `invalid_reason`: points trained on
AI-feedback pairs share the feedback-model gate of `dpo_aif` (caibase.feedback_gate), and a metric whose judge failed
the judge gate (caibase.judge_gate) is invalid at every point.

    snakemake --cores 1 results/embedded-cpu/tables/data_scale.csv
"""

from pathlib import Path

import pandas as pd

from caibase.artifacts import read_json, read_records, write_csv
from caibase.data_scale import data_scale_tables
from caibase.feedback_gate import AIF_CONDITION, feedback_gate, mark_conditions
from caibase.judge_gate import from_record
from caibase.records import judged_frame
from caibase.runtime import setup
from caibase.vocabulary import AI_FEEDBACK, SFT


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
    judged = judged_frame(record for path in smk.input.judged for record in read_records(path)
                          if record["prompt_set"] in smk.params.eval_sets)
    per_seed, summary = data_scale_tables(judged, pd.DataFrame(rows), n_boot=smk.params.bootstrap_samples)
    model = read_json(smk.input.model)
    gate = feedback_gate(read_json(smk.input.feedback[0])) if smk.input.feedback else None
    judge_gates = from_record(read_json(smk.input.judge_gate)["gates"])
    for table, path in ((per_seed, smk.output.per_seed), (summary, smk.output.summary)):
        table["model_id"], table["model_kind"] = model["id"], model["kind"]
        # a point's condition for the gates: its AI-feedback DPO points are dpo_aif's, the rest are not gated by it
        condition = [AIF_CONDITION if pairs == AI_FEEDBACK and point != SFT else point
                     for pairs, point in zip(table["pairs"], table["point"])]
        table = mark_conditions(table.assign(condition=condition), gate, judge_gates=judge_gates)
        write_csv(table.drop(columns="condition"), path)
    log.info("data-scale tables: %d points x seeds, %d summary rows", len(rows), len(summary))


main(snakemake)  # noqa: F821
