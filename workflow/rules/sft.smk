rule sft:
    input:
        model=rules.prepare_model.output.info,
        demonstrations=PROMPT_FILES["helpful_sft"],
        splits=rules.check_prompt_splits.output.report,
    output:
        adapter=directory(layout.adapter_dir(layout.stage_dir(OUT, "{seed}", SFT))),
        history=layout.history_path(layout.stage_dir(OUT, "{seed}", SFT)),
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
