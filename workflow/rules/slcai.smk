rule critique_revise:
    input:
        model=rules.prepare_model.output.info,
        adapters=[f"{OUT}/seed{{seed}}/sft/adapter"],
        responses=f"{OUT}/seed{{seed}}/responses/sft/redteam_train.jsonl",
    output:
        revisions=f"{OUT}/seed{{seed}}/slcai/revisions.jsonl",
    log:
        f"{OUT}/logs/seed{{seed}}/critique_revise.log",
    threads: 2
    conda:
        ENV
    container:
        CONTAINER
    script:
        "../../scripts/critique_revise.py"


rule preference_pairs:
    input:
        revisions=rules.critique_revise.output.revisions,
    output:
        pairs=f"{OUT}/seed{{seed}}/pairs/revision.jsonl",
        excluded=f"{OUT}/seed{{seed}}/pairs/revision.excluded.jsonl",
    log:
        f"{OUT}/logs/seed{{seed}}/preference_pairs.log",
    conda:
        ENV
    container:
        CONTAINER
    script:
        "../../scripts/preference_pairs.py"
