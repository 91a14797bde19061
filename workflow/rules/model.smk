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


rule check_prompt_splits:
    input:
        **PROMPT_FILES,
    output:
        report=f"{OUT}/checks/prompt_splits.json",
    params:
        threshold=config["prompts"]["near_duplicate_threshold"],
    log:
        f"{OUT}/logs/check_prompt_splits.log",
    conda:
        ENV
    container:
        CONTAINER
    script:
        "../../scripts/check_prompt_splits.py"
