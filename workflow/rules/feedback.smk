rule validate_feedback_model:
    input:
        model=rules.prepare_model.output.info,
    output:
        hhh=f"{OUT}/feedback/validation/hhh.jsonl",
        hh_rlhf=f"{OUT}/feedback/validation/hh_rlhf.jsonl",
        summary=f"{OUT}/feedback/validation/summary.json",
    params:
        **job_params("scripts/validate_feedback_model.py", "model", "device", "constitution"),
        feedback=config["feedback"],
    log:
        f"{OUT}/logs/validate_feedback_model.log",
    benchmark:
        benchmark_file("validate_feedback_model")
    resources:
        **stage_resources("feedback"),
    threads: config["threads"]
    container:
        CONTAINER
    script:
        "../../scripts/validate_feedback_model.py"


rule ai_feedback_labels:
    input:
        model=rules.prepare_model.output.info,
        responses=rules.generate_redteam.output.responses,
    output:
        labels=layout.pairs_path(OUT, "{seed}", AI_FEEDBACK, "labels"),
        pairs=layout.pairs_path(OUT, "{seed}", AI_FEEDBACK),
    params:
        **job_params("scripts/ai_feedback_labels.py", "model", "device", "constitution"),
        feedback={key: value for key, value in config["feedback"].items() if key != "gate"},  # the gate: validation
    log:
        f"{OUT}/logs/seed{{seed}}/ai_feedback_labels.log",
    benchmark:
        benchmark_file("ai_feedback_labels/seed{seed}")
    resources:
        **stage_resources("feedback"),
    threads: config["threads"]
    container:
        CONTAINER
    script:
        "../../scripts/ai_feedback_labels.py"
