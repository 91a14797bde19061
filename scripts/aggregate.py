"""Per-condition table over seeds (mean, sd, two-way bootstrap CI) and paired differences between conditions (same
seeds and prompts: bootstrap CI, sign-flip permutation test over seeds, minimum detectable effect), from every
judged record.

    snakemake --cores 1 results/embedded-cpu/tables/summary_by_condition.csv
"""

import pandas as pd

from caibase.artifacts import atomic_path, read_json, read_jsonl, write_json
from caibase.metrics import paired_table, per_seed, summarize
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
    paired = paired_table(judged, smk.config["evaluation"]["conditions"], n_boot=smk.params.bootstrap_samples)
    with atomic_path(smk.output.paired) as tmp:
        paired.to_csv(tmp, index=False, float_format="%.4f")
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
        "paired_differences": paired.to_dict(orient="records"),
        "feedback_validation": {
            dataset: {key: result[key] for key in ("n", "accuracy", "accuracy_ci95_wilson", "position_consistency")}
            for path in smk.input.feedback
            for dataset, result in read_json(path).items() if isinstance(result, dict) and "accuracy" in result
        },
    })
    log.info("aggregated %d judged records", len(judged))


main(snakemake)  # noqa: F821
