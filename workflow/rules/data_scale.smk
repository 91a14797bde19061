use rule dpo as dpo_subsample with:
    output:
        adapter=directory(layout.adapter_dir(layout.dpo_dir(OUT, "{seed}", "{pairs}", "{n_pairs}"))),
        history=layout.history_path(layout.dpo_dir(OUT, "{seed}", "{pairs}", "{n_pairs}")),
    params:
        **job_params("scripts/train_dpo.py", "model", "device", "training", "dpo"),
        n_pairs=lambda wildcards: int(wildcards.n_pairs),
    log:
        f"{OUT}/logs/seed{{seed}}/dpo_{{pairs}}_n{{n_pairs}}.log",
    benchmark:
        benchmark_file("dpo_subsample/seed{seed}/{pairs}_n{n_pairs}")
    wildcard_constraints:
        n_pairs=r"\d+",


rule data_scale:
    input:
        judged=sorted(
            {rules.judge.output.judged.format(seed=p["seed"], policy=p["policy"]) for p in data_scale_points()}
        ),
        adapters=[p["adapter"] for p in data_scale_points() if p["adapter"]],
        model=rules.prepare_model.output.info,
        feedback=[rules.validate_feedback_model.output.summary] if config["feedback"]["validate"] else [],
        judge_gate=rules.validate_judges.output.gate,
    output:
        per_seed=f"{OUT}/tables/data_scale.csv",
        summary=f"{OUT}/tables/data_scale_summary.csv",
    params:
        **job_params("scripts/data_scale.py"),
        points=data_scale_points(),
        eval_sets=SWEEP["eval_sets"],
        bootstrap_samples=config["evaluation"]["bootstrap_samples"],
    log:
        f"{OUT}/logs/data_scale.log",
    container:
        CONTAINER
    script:
        "../../scripts/data_scale.py"
