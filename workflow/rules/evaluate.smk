rule judge:
    input:
        responses=rules.generate_eval.output.responses,
    output:
        judged=f"{OUT}/seed{{seed}}/eval/{{policy}}/judged.jsonl",
    params:
        judge=config["evaluation"]["judge"],
        max_failure_share=config["evaluation"]["max_judge_failure_share"],
    log:
        f"{OUT}/logs/seed{{seed}}/judge_{{policy}}.log",
    conda:
        ENV
    container:
        CONTAINER
    script:
        "../../scripts/judge.py"
