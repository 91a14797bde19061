rule sft:
    input:
        model=rules.prepare_model.output.info,
        demonstrations=PROMPT_FILES["helpful_sft"],
        splits=rules.check_prompt_splits.output.report,
    output:
        adapter=directory(f"{OUT}/seed{{seed}}/sft/adapter"),
        history=f"{OUT}/seed{{seed}}/sft/history.csv",
    params:
        **job_params("scripts/train_sft.py", "model", "device", "training"),
        trainer=config["sft"],
    log:
        f"{OUT}/logs/seed{{seed}}/sft.log",
    benchmark:
        benchmark_file("sft/seed{seed}")
    resources:
        **stage_resources("train"),
    threads: config["threads"]
    container:
        CONTAINER
    script:
        "../../scripts/train_sft.py"
