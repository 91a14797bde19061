rule prepare_model:
    output:
        info=f"{OUT}/model/model_info.json",
    log:
        f"{OUT}/logs/prepare_model.log",
    benchmark:
        benchmark_file("prepare_model")
    resources:
        **stage_resources("prepare_model"),
    threads: config["threads"]
    conda:
        ENV
    container:
        CONTAINER
    script:
        "../../scripts/prepare_model.py"
