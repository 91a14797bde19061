"""Every number the write-up reports, recomputed from the raw per-item records with the formula registry and checked
against the aggregate tables: published.json (number, sources, formula) and the paper's macro file.

    snakemake --cores 1 results/embedded-cpu/paper/published.json
"""

from collections import defaultdict

import pandas as pd

from caibase.artifacts import atomic_path, read_json, read_jsonl, write_json
from caibase.metrics import two_way_bootstrap
from caibase.provenance import code_version, config_sha256
from caibase.published import ABS_TOLERANCE, build_numbers, formula_docs
from caibase.report import is_rate, macros_tex
from caibase.runtime import setup


def main(smk) -> None:
    log = setup(smk.log[0])
    config = smk.config
    judged = defaultdict(list)
    for path in smk.input.judged:  # .../seed{seed}/eval/{condition}/judged.jsonl
        judged[path.split("/")[-2]].append(path)
    histories = defaultdict(list)
    for path in smk.input.histories:  # .../seed{seed}/dpo/{pairs}/history.csv
        histories[path.split("/")[-2]].append(path)
    feedback = dict(zip(("hhh", "hh_rlhf"), smk.input.feedback))
    summary = pd.read_csv(smk.input.summary)
    paired = pd.read_csv(smk.input.paired)
    numbers, unverified = build_numbers(summary, paired, dict(judged), feedback, dict(histories),
                                        n_boot=smk.params.bootstrap_samples)
    first = read_jsonl(smk.input.judged[0])[0]
    model = read_json(smk.input.model)
    all_judged = [r for path in smk.input.judged for r in read_jsonl(path)]
    ci_level = two_way_bootstrap.__defaults__[-1]
    published = {
        "format": "caibase-published/1",
        "tolerance": {"abs": ABS_TOLERANCE, "note": "|recomputed - published| <= abs, same record count"},
        "meta": {
            "run_name": config["run_name"], "model": {k: model[k] for k in ("id", "source", "kind", "sha256")},
            "config_sha256": config_sha256(config), "code_version": code_version(),
            "results_code_versions": sorted({r["provenance"]["code_version"] for r in all_judged}),
            "seeds": config["seeds"], "conditions": config["evaluation"]["conditions"], "device": config["device"],
            "judge": first["judge"], "judge_is_proxy": bool(first["judge_is_proxy"]),
            "prompts_per_set": config["prompts"].get("eval_limit", "all"),
            "bootstrap_samples": smk.params.bootstrap_samples, "ci_level": ci_level,
            "dpo_beta": config["dpo"]["beta"], "dpo_steps": config["dpo"]["max_steps"],
            "critique_rounds": config["critique"]["rounds"],
            "redteam_prompts": sum(config["prompts"].get(k) or 0 for k in ("redteam_limit", "redteam_hh_rlhf")),
            "present": {"Scores": any(not is_rate(summary, m) for m in set(summary.metric)),
                        "Feedback": bool(feedback), "Paired": not paired.empty,
                        "DataScale": bool(smk.input.data_scale), "JudgeAgreement": bool(smk.input.judge_agreement)},
        },
        "formulas": formula_docs(),
        "numbers": numbers,
        "unverified": unverified,
    }
    write_json(smk.output.published, published)
    with atomic_path(smk.output.macros) as tmp:
        tmp.write_text(macros_tex(published), encoding="utf-8")
    log.info("published %d numbers (%d table cells without a registered formula)", len(numbers), len(unverified))


main(snakemake)  # noqa: F821
