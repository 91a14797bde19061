rule dpo:
    input:
        model=rules.prepare_model.output.info,
        sft_adapter=rules.sft.output.adapter,
        pairs=f"{OUT}/seed{{seed}}/pairs/{{pairs}}.jsonl",
    output:
        adapter=directory(f"{OUT}/seed{{seed}}/dpo/{{pairs}}/adapter"),
        history=f"{OUT}/seed{{seed}}/dpo/{{pairs}}/history.csv",
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
