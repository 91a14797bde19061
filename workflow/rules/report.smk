rule aggregate:
    input:
        judged=expand(rules.judge.output.judged, seed=SEEDS, policy=CONDITIONS),
        model=rules.prepare_model.output.info,
        feedback=[rules.validate_feedback_model.output.summary] if config["feedback"]["validate"] else [],
        judge_agreement=rules.validate_judges.output.table,
    output:
        summary=f"{OUT}/tables/summary_by_condition.csv",
        per_seed=f"{OUT}/tables/per_seed.csv",
        paired=f"{OUT}/tables/paired_differences.csv",
        status=f"{OUT}/tables/judge_status.csv",
        metrics=f"{OUT}/metrics.json",
    params:
        bootstrap_samples=config["evaluation"]["bootstrap_samples"],
    log:
        f"{OUT}/logs/aggregate.log",
    conda:
        ENV
    container:
        CONTAINER
    script:
        "../../scripts/aggregate.py"
