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


# The instruct reference (evaluation.instruct_reference), the model of the condition instruct_ref, prepared by the
# same script: the job's `model` is the reference entry (REFERENCE_CONFIG).
rule prepare_reference_model:
    output:
        info=f"{OUT}/reference_model/model_info.json",
    params:
        **job_params("scripts/prepare_model.py", "model", of=REFERENCE_CONFIG),
    log:
        f"{OUT}/logs/prepare_reference_model.log",
    benchmark:
        benchmark_file("prepare_reference_model")
    resources:
        **stage_resources("prepare_model"),
    threads: config["threads"]
    container:
        CONTAINER
    script:
        "../../scripts/prepare_model.py"
