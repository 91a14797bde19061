# Validated against human labels: the refusal judge, and the score judge too when it can label refusals.
VALIDATED_JUDGES = [config["evaluation"]["judge"]] + [
    cfg
    for cfg in [config["evaluation"].get("score_judge")]
    if cfg and cfg["backend"] != "refusal-strings" and cfg != config["evaluation"]["judge"]
]


rule judge:
    input:
        responses=rules.generate_eval.output.responses,
        model=rules.prepare_model.output.info,
        seed_source=seed_judge_sources,
    output:
        judged=layout.judged_path(OUT, "{seed}", "{policy}"),
    params:
        **job_params(
            "scripts/judge.py",
            "run_name",
            "model.dtype",
            "device",
            "evaluation.judge",
            "evaluation.score_judge",
            "evaluation.max_judge_failure_share",
            "evaluation.max_degenerate_share",
        ),
        cache_dir=f"{OUT}/judge_cache",
    log:
        f"{OUT}/logs/seed{{seed}}/judge_{{policy}}.log",
    threads: config["threads"]
    benchmark:
        benchmark_file("judge/seed{seed}/{policy}")
    resources:
        **stage_resources("judge"),
    container:
        CONTAINER
    script:
        "../../scripts/judge.py"


rule validate_judges:
    input:
        model=rules.prepare_model.output.info,
        labeled=judge_label_files,
        canary=judge_canary_file,
        seed_source=seed_judge_sources,
    output:
        records=f"{OUT}/judges/validation.jsonl",
        canary=f"{OUT}/judges/score_canary.jsonl",
        gate=f"{OUT}/judges/gate.json",
        table=f"{OUT}/tables/judge_agreement.csv",
    params:
        **job_params("scripts/validate_judges.py", "model.dtype", "device"),
        judges=VALIDATED_JUDGES,
        refusal_judge=config["evaluation"]["judge"],
        score_judge=config["evaluation"].get("score_judge"),
        validation=config["evaluation"]["judge_validation"],
        gate=config["evaluation"]["judge_gate"],
        cache_dir=f"{OUT}/judge_cache",
        max_failure_share=config["evaluation"]["max_judge_failure_share"],
    log:
        f"{OUT}/logs/validate_judges.log",
    benchmark:
        benchmark_file("validate_judges")
    resources:
        **stage_resources("judge"),
    threads: config["threads"]
    container:
        CONTAINER
    script:
        "../../scripts/validate_judges.py"
