rule generate_redteam:
    input:
        model=rules.prepare_model.output.info,
        prompts=[PROMPT_FILES["redteam_train"]],
        adapters=[f"{OUT}/seed{{seed}}/sft/adapter"],
        splits=rules.check_prompt_splits.output.report,
    output:
        responses=f"{OUT}/seed{{seed}}/slcai/responses.jsonl",
    params:
        policy="sft",
        prompt_sets=["redteam_train"],
        limit=None,
        n_samples=2 if "dpo_aif" in CONDITIONS else 1,  # AI feedback compares two samples
        sampling=config["generation"],
    log:
        f"{OUT}/logs/seed{{seed}}/generate_redteam.log",
    threads: config["threads"]
    conda:
        ENV
    container:
        CONTAINER
    script:
        "../../scripts/generate_responses.py"


rule generate_eval:
    input:
        model=rules.prepare_model.output.info,
        prompts=lambda wildcards: [PROMPT_FILES[name] for name in policy_eval_sets(wildcards)],
        adapters=policy_adapters,
        splits=rules.check_prompt_splits.output.report,
    output:
        responses=f"{OUT}/seed{{seed}}/eval/{{policy}}/responses.jsonl",
    params:
        policy=lambda wc: wc.policy,
        prompt_sets=policy_eval_sets,
        limit=config["prompts"]["eval_limit"],
        n_samples=1,
        sampling=config["evaluation"]["sampling"],
    log:
        f"{OUT}/logs/seed{{seed}}/generate_eval_{{policy}}.log",
    threads: config["threads"]
    conda:
        ENV
    container:
        CONTAINER
    script:
        "../../scripts/generate_responses.py"
