rule dpo:
    input:
        model=rules.prepare_model.output.info,
        sft_adapter=rules.sft.output.adapter,
        pairs=rules.preference_pairs.output.pairs,
    output:
        adapter=directory(f"{OUT}/seed{{seed}}/dpo/adapter"),
        history=f"{OUT}/seed{{seed}}/dpo/history.csv",
    log:
        f"{OUT}/logs/seed{{seed}}/dpo.log",
    threads: config["threads"]
    conda:
        ENV
    container:
        CONTAINER
    script:
        "../../scripts/train_dpo.py"
