rule judge:
    input:
        responses=f"{OUT}/seed{{seed}}/responses/{{policy}}/{{prompt_set}}.jsonl",
    output:
        judged=f"{OUT}/seed{{seed}}/judged/{{policy}}/{{prompt_set}}.jsonl",
    params:
        judge=config["evaluation"]["judge"],
        max_failure_share=config["evaluation"]["max_judge_failure_share"],
    log:
        f"{OUT}/logs/seed{{seed}}/judge_{{policy}}_{{prompt_set}}.log",
    conda:
        ENV
    container:
        CONTAINER
    script:
        "../../scripts/judge.py"
