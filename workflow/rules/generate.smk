rule generate_redteam:
    input:
        model=rules.prepare_model.output.info,
        prompts=[PROMPT_FILES["redteam_train"]],
        adapters=[rules.sft.output.adapter],
        splits=rules.check_prompt_splits.output.report,
    output:
        responses=layout.redteam_responses_path(OUT, "{seed}"),
    params:
        **job_params("scripts/generate_responses.py", "model", "device", "generation.backend"),
        policy=SFT,
        prompt_sets=["redteam_train"],
        limit=None,
        n_samples=2 if DPO_AIF in CONDITIONS else 1,  # AI feedback compares two samples
        sampling=config["generation"],
    log:
        f"{OUT}/logs/seed{{seed}}/generate_redteam.log",
    benchmark:
        benchmark_file("generate_redteam/seed{seed}")
    resources:
        **stage_resources("generate"),
    threads: config["threads"]
    container:
        CONTAINER
    script:
        "../../scripts/generate_responses.py"


# Each policy from its model (policy_model, policy_adapters), prompted in that model's native format, as in the
# study: instruct_ref (the instruct reference) with its chat template, the CAI policies in the dialogue format.
rule generate_eval:
    input:
        model=policy_model,
        prompts=lambda wildcards: [PROMPT_FILES[name] for name in policy_eval_sets(wildcards)],
        adapters=policy_adapters,
        splits=rules.check_prompt_splits.output.report,
    output:
        responses=layout.responses_path(OUT, "{seed}", "{policy}"),
    params:
        **policy_job_params("scripts/generate_responses.py", "model", "device", "generation.backend"),
        policy=lambda wc: wc.policy,
        prompt_sets=policy_eval_sets,
        limit={name: config["prompts"]["eval_limits"].get(name, config["prompts"]["eval_limit"]) for name in EVAL_SETS},
        n_samples=config["evaluation"]["samples_per_prompt"],
        sampling=config["evaluation"]["sampling"],
    log:
        f"{OUT}/logs/seed{{seed}}/generate_eval_{{policy}}.log",
    benchmark:
        benchmark_file("generate_eval/seed{seed}/{policy}")
    resources:
        **stage_resources("generate"),
    threads: config["threads"]
    container:
        CONTAINER
    script:
        "../../scripts/generate_responses.py"
