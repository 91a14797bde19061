rule dpo:
    input:
        model=rules.prepare_model.output.info,
        sft_adapter=rules.sft.output.adapter,
        pairs=layout.pairs_path(OUT, "{seed}", "{pairs}"),
    output:
        adapter=directory(layout.adapter_dir(layout.dpo_dir(OUT, "{seed}", "{pairs}"))),
        history=layout.history_path(layout.dpo_dir(OUT, "{seed}", "{pairs}")),
    params:
        **job_params("scripts/train_dpo.py", "model", "device", "training", "dpo", "-dpo.sweep"),
    log:
        f"{OUT}/logs/seed{{seed}}/dpo_{{pairs}}.log",
    benchmark:
        benchmark_file("dpo/seed{seed}/{pairs}")
    resources:
        **stage_resources("train"),
    threads: config["threads"]
    container:
        CONTAINER
    script:
        "../../scripts/train_dpo.py"
