rule critique_revise:
    input:
        model=rules.prepare_model.output.info,
        adapters=[rules.sft.output.adapter],
        responses=rules.generate_redteam.output.responses,
    output:
        revisions=layout.revisions_path(OUT, "{seed}"),
        summary=f"{layout.stage_dir(OUT, '{seed}', SLCAI)}/degenerate.json",
    params:
        **job_params("scripts/critique_revise.py", "model", "device", "generation.backend", "critique", "constitution"),
    log:
        f"{OUT}/logs/seed{{seed}}/critique_revise.log",
    benchmark:
        benchmark_file("critique_revise/seed{seed}")
    resources:
        **stage_resources("critique"),
    threads: config["threads"]
    container:
        CONTAINER
    script:
        "../../scripts/critique_revise.py"


rule preference_pairs:
    input:
        revisions=rules.critique_revise.output.revisions,
    output:
        pairs=layout.pairs_path(OUT, "{seed}", REVISION),
        excluded=layout.pairs_path(OUT, "{seed}", REVISION, "excluded"),
    params:
        **job_params("scripts/preference_pairs.py"),
    log:
        f"{OUT}/logs/seed{{seed}}/preference_pairs.log",
    container:
        CONTAINER
    script:
        "../../scripts/preference_pairs.py"


rule slcai_sft:
    input:
        model=rules.prepare_model.output.info,
        demonstrations=PROMPT_FILES["helpful_sft"],
        revisions=rules.critique_revise.output.revisions,
    output:
        adapter=directory(layout.adapter_dir(layout.stage_dir(OUT, "{seed}", SLCAI))),
        history=layout.history_path(layout.stage_dir(OUT, "{seed}", SLCAI)),
    params:
        **job_params("scripts/train_sft.py", "model", "device", "training"),
        trainer=config["slcai_sft"],
        all_revisions=config["slcai_sft"]["all_revisions"],
    log:
        f"{OUT}/logs/seed{{seed}}/slcai_sft.log",
    benchmark:
        benchmark_file("slcai_sft/seed{seed}")
    resources:
        **stage_resources("train"),
    threads: config["threads"]
    container:
        CONTAINER
    script:
        "../../scripts/train_sft.py"
