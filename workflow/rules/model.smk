rule prepare_model:
    output:
        info=f"{OUT}/model/model_info.json",
    log:
        f"{OUT}/logs/prepare_model.log",
    threads: config["threads"]
    conda:
        ENV
    container:
        CONTAINER
    script:
        "../../scripts/prepare_model.py"
