rule generate_responses:
    input:
        model=rules.prepare_model.output.info,
        prompts=lambda wc: PROMPT_FILES[wc.prompt_set],
        adapters=policy_adapters,
        splits=rules.check_prompt_splits.output.report,
    output:
        responses=f"{OUT}/seed{{seed}}/responses/{{policy}}/{{prompt_set}}.jsonl",
    log:
        f"{OUT}/logs/seed{{seed}}/generate_{{policy}}_{{prompt_set}}.log",
    threads: config["threads"]
    conda:
        ENV
    container:
        CONTAINER
    script:
        "../../scripts/generate_responses.py"
