rule aggregate:
    input:
        judged=expand(
            f"{OUT}/seed{{seed}}/judged/{{policy}}/{{prompt_set}}.jsonl",
            seed=SEEDS,
            policy=CONDITIONS,
            prompt_set=EVAL_SETS,
        ),
        model=rules.prepare_model.output.info,
    output:
        summary=f"{OUT}/tables/summary_by_condition.csv",
        per_seed=f"{OUT}/tables/per_seed.csv",
        metrics=f"{OUT}/metrics.json",
    params:
        bootstrap_samples=config["evaluation"]["bootstrap_samples"],
    log:
        f"{OUT}/logs/aggregate.log",
    container: CONTAINER
    script:
        "../../scripts/aggregate.py"
