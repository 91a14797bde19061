rule build_redteam_set:
    input:
        redteam=SOURCE_PROMPT_FILES["redteam_train"],
        eval_sets=[SOURCE_PROMPT_FILES[name] for name in EVAL_SETS],
    output:
        prompts=PROMPT_FILES["redteam_train"],
    params:
        **job_params("scripts/build_redteam_set.py"),
        limit=config["prompts"]["redteam_limit"],
        hh_rlhf=config["prompts"]["redteam_hh_rlhf"],
        eval_names=EVAL_SETS,
        threshold=config["prompts"]["near_duplicate_threshold"],
    log:
        f"{OUT}/logs/build_redteam_set.log",
    container:
        CONTAINER
    script:
        "../../scripts/build_redteam_set.py"


seed_study_summary()


# A prompt set of the replicated study (`seed-2025:<set>` in the config), fetched at the pinned commit, checked by
# sha256, parsed with `ast` (never executed) and written as a prompt-set JSONL under `prompts.seed_protocol`.
rule seed_prompt_set:
    output:
        prompts=f"{OUT}/prompts/seed-2025/{{seed_set}}.jsonl",
    wildcard_constraints:
        seed_set="|".join(sorted(set(SEED_PROMPT_SETS.values()))) or "(?!)",
    params:
        **job_params("scripts/seed_prompt_set.py"),
        protocol=SEED_PROTOCOL,
    log:
        f"{OUT}/logs/seed_prompt_set_{{seed_set}}.log",
    container:
        CONTAINER
    script:
        "../../scripts/seed_prompt_set.py"


rule check_prompt_splits:
    input:
        **PROMPT_FILES,
    output:
        report=f"{OUT}/checks/prompt_splits.json",
    params:
        # The study's own protocol trains on its evaluation prompts: recorded in the report, not a failure.
        **(
            {"allow_overlap": "seed_protocol: same_prompts"}
            if SEED_PROMPT_SETS and SEED_PROTOCOL == "same_prompts"
            else {}
        ),
        **job_params("scripts/check_prompt_splits.py"),
        threshold=config["prompts"]["near_duplicate_threshold"],
    log:
        f"{OUT}/logs/check_prompt_splits.log",
    container:
        CONTAINER
    script:
        "../../scripts/check_prompt_splits.py"


# The public data this run uses (HH-RLHF file and rows, HHH sample, the paper's prompts), each with its sha256 and
# whether it came from the mirror or upstream: a `cache: false` output of dvc.yaml, so it is in git and dvc.lock.
rule record_sources:
    output:
        sources=f"{OUT}/prompts/sources.json",
    params:
        **job_params(
            "scripts/record_sources.py",
            "constitution",
            "feedback",
            "-feedback.gate",
            "prompts.redteam_hh_rlhf",
            "evaluation.judge_validation",
        ),
    log:
        f"{OUT}/logs/record_sources.log",
    container:
        CONTAINER
    script:
        "../../scripts/record_sources.py"
