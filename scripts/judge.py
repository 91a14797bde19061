"""Judge one condition's evaluation responses (every eval set); one record per response. Refusal-task sets
(jailbreak, harmful_direct, benign) go to evaluation.judge, helpful/style to evaluation.score_judge. Fails loudly
when judge failures or degenerate responses exceed their configured shares, or when the refusal judge fails its
canary set. Verdicts are cached under results/<run>/judge_cache/, so a rerun does not judge again.

    snakemake --cores 1 results/embedded-cpu/seed1/eval/dpo/judged.jsonl
"""

from pathlib import Path

from caibase.artifacts import read_jsonl, write_jsonl
from caibase.judges import JudgeCache, canary_check, check_judged, judge_responses, make_judge
from caibase.layout import seed_label
from caibase.records import JudgedRecord, ResponseRecord, check_records
from caibase.runtime import setup
from caibase.vocabulary import REFUSAL_TASK, SCORE_TASKS, SET_TASKS


def main(smk) -> None:
    log = setup(smk.log[0], smk.threads)
    model_dir = Path(smk.input.model).parent
    config = smk.params.config
    evaluation, runtime = config["evaluation"], {"dtype": config["model"]["dtype"], "device": config["device"]}
    judges = {REFUSAL_TASK: make_judge(evaluation["judge"], model_dir, **runtime)}
    if "score_judge" in evaluation:
        score_judge = make_judge(evaluation["score_judge"], model_dir, **runtime)
        judges.update({task: score_judge for task in SCORE_TASKS})
    log.info("canary check: %s", canary_check(judges[REFUSAL_TASK]))
    cache = JudgeCache(smk.params.cache_dir, f"{seed_label(smk.wildcards.seed)}-{smk.wildcards.policy}")
    responses = check_records(read_jsonl(smk.input.responses), ResponseRecord)
    judged, n_cached = judge_responses(responses, judges, SET_TASKS, config["run_name"], cache)
    counts = check_judged(judged, evaluation["max_judge_failure_share"], evaluation["max_degenerate_share"])
    write_jsonl(smk.output.judged, check_records(judged, JudgedRecord))
    log.info("judged %d responses (%d from the cache): %s", len(judged), n_cached, counts)


main(snakemake)  # noqa: F821
