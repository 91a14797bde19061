rule prepare_model:
    output:
        info=f"{OUT}/model/model_info.json",
    params:
        **job_params("scripts/prepare_model.py", "model"),
    log:
        f"{OUT}/logs/prepare_model.log",
    benchmark:
        benchmark_file("prepare_model")
    resources:
        **stage_resources("prepare_model"),
    threads: config["threads"]
    container:
        CONTAINER
    script:
        "../../scripts/prepare_model.py"
