"""Per-condition table over seeds (mean, sd, two-way bootstrap CI) from every judged record.

    snakemake --cores 1 results/embedded-cpu/tables/summary_by_condition.csv
"""

import pandas as pd

from caibase.artifacts import atomic_path, read_json, read_jsonl, write_json
from caibase.metrics import summarize, per_seed
from caibase.provenance import code_version, config_sha256
from caibase.runtime import setup


def main(smk) -> None:
    log = setup(smk.log[0])
    judged = pd.DataFrame([record for path in smk.input.judged for record in read_jsonl(path)])
    judged = judged.rename(columns={"id": "prompt_id"})
    summary = summarize(judged, n_boot=smk.params.bootstrap_samples)
    model = read_json(smk.input.model)
    summary.insert(0, "model_kind", model["kind"])
    summary.insert(0, "model_id", model["id"])
    with atomic_path(smk.output.summary) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(smk.output.per_seed) as tmp:
        per_seed(judged).to_csv(tmp, index=False, float_format="%.4f")
    write_json(smk.output.metrics, {
        "run_name": smk.config["run_name"],
        "model": {k: model[k] for k in ("id", "source", "kind", "sha256", "revision")},
        "judge": judged["judge"].iloc[0],
        "judge_failures": judged["status"].ne("ok").sum().item(),
        "judge_is_proxy": bool(judged["judge_is_proxy"].iloc[0]),
        "seeds": smk.config["seeds"],
        "config_sha256": config_sha256(smk.config),
        "code_version": code_version(),
        "summary": summary.to_dict(orient="records"),
    })
    log.info("aggregated %d judged records", len(judged))


main(snakemake)  # noqa: F821
