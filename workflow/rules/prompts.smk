rule build_redteam_set:
    input:
        redteam=SOURCE_PROMPT_FILES["redteam_train"],
        eval_sets=[SOURCE_PROMPT_FILES[name] for name in EVAL_SETS],
    output:
        prompts=PROMPT_FILES["redteam_train"],
    params:
        limit=config["prompts"]["redteam_limit"],
        hh_rlhf=config["prompts"]["redteam_hh_rlhf"],
        eval_names=EVAL_SETS,
        threshold=config["prompts"]["near_duplicate_threshold"],
    log:
        f"{OUT}/logs/build_redteam_set.log",
    conda:
        ENV
    container:
        CONTAINER
    script:
        "../../scripts/build_redteam_set.py"


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
