rule aggregate:
    input:
        judged=expand(rules.judge.output.judged, seed=SEEDS, policy=CONDITIONS),
        model=rules.prepare_model.output.info,
        feedback=[rules.validate_feedback_model.output.summary] if config["feedback"]["validate"] else [],
        judge_agreement=rules.validate_judges.output.table,
        judge_gate=rules.validate_judges.output.gate,
    output:
        summary=report(f"{OUT}/tables/summary_by_condition.csv", caption="../report/summary.rst", category="Results"),
        per_seed=f"{OUT}/tables/per_seed.csv",
        paired=f"{OUT}/tables/paired_differences.csv",
        status=f"{OUT}/tables/judge_status.csv",
        metrics=report(f"{OUT}/metrics.json", caption="../report/metrics.rst", category="Results"),
    params:
        **job_params(
            "scripts/aggregate.py", "run_name", "seeds", "evaluation.conditions", "evaluation.samples_per_prompt"
        ),
        bootstrap_samples=config["evaluation"]["bootstrap_samples"],
    log:
        f"{OUT}/logs/aggregate.log",
    container:
        CONTAINER
    script:
        "../../scripts/aggregate.py"


# The write-up: published numbers recomputed from raw records, tables, figures and the LaTeX paper, per run under
# results/<run>/paper/. With `report.publish_dir` (the reference config) the published numbers and generated parts
# are also copied there (paper/) to be committed beside main.tex.
PAPER = f"{OUT}/paper"
PUBLISH_DIR = config["report"]["publish_dir"]
PUBLISHED = f"{PUBLISH_DIR}/published.json" if PUBLISH_DIR else f"{PAPER}/published.json"
DPO_PAIRS = [pairs for policy, pairs in DPO_POLICIES.items() if policy in CONDITIONS]


# What every published number is recomputed from (verify reads nothing else).
RAW_RECORDS = {
    "judged": expand(rules.judge.output.judged, seed=SEEDS, policy=CONDITIONS),
    "histories": expand(rules.dpo.output.history, seed=SEEDS, pairs=DPO_PAIRS),
    "feedback": (
        [rules.validate_feedback_model.output.hhh, rules.validate_feedback_model.output.hh_rlhf]
        if config["feedback"]["validate"]
        else []
    ),
    "sweep_judged": rules.data_scale.input.judged if SWEEP_POLICIES else [],
    "judge_validation": rules.validate_judges.output.records,
    "judge_canary": rules.validate_judges.output.canary,
}
# The same records by what they are of, for the scripts (which never take a path apart): condition -> judged records
# per seed, pairs -> {seed label: DPO history}.
JUDGED_OF = {condition: [layout.judged_path(OUT, seed, condition) for seed in SEEDS] for condition in CONDITIONS}
HISTORIES_OF = {
    pairs: {layout.seed_label(seed): layout.history_path(layout.dpo_dir(OUT, seed, pairs)) for seed in SEEDS}
    for pairs in DPO_PAIRS
}
DATA_SCALE_TABLES = [rules.data_scale.output.per_seed, rules.data_scale.output.summary] if SWEEP_POLICIES else []


rule publish_numbers:
    input:
        **RAW_RECORDS,
        summary=rules.aggregate.output.summary,
        paired=rules.aggregate.output.paired,
        model=rules.prepare_model.output.info,
        reference_model=[rules.prepare_reference_model.output.info] if INSTRUCT_REF in CONDITIONS else [],
        data_scale=DATA_SCALE_TABLES,
        judge_agreement=rules.validate_judges.output.table,
        judge_gate=rules.validate_judges.output.gate,
        benchmarks=upstream_benchmarks(),
    output:
        published=f"{PAPER}/published.json",
        macros=f"{PAPER}/generated/macros.tex",
    params:
        **job_params(
            "scripts/publish_numbers.py",
            "run_name",
            "seeds",
            "device",
            "evaluation.conditions",
            "evaluation.samples_per_prompt",
            "prompts.eval_limit",
            "prompts.eval_limits",
            "prompts.redteam_limit",
            "prompts.redteam_hh_rlhf",
            "dpo.beta",
            "dpo.max_steps",
            "critique.rounds",
        ),
        bootstrap_samples=config["evaluation"]["bootstrap_samples"],
        judged_path=lambda wildcards: str(rules.judge.output.judged),  # {seed}, {policy} filled in by the script
        judged_of=JUDGED_OF,
        histories_of=HISTORIES_OF,
        sweep_eval_sets=SWEEP["eval_sets"],
    log:
        f"{OUT}/logs/publish_numbers.log",
    container:
        CONTAINER
    script:
        "../../scripts/publish_numbers.py"


rule render_report:
    input:
        published=rules.publish_numbers.output.published,
        summary=rules.aggregate.output.summary,
        histories=RAW_RECORDS["histories"],
        feedback=RAW_RECORDS["feedback"],
        data_scale=DATA_SCALE_TABLES,
    output:
        tables=report(
            directory(f"{PAPER}/generated/tables"),
            patterns=["{name}.csv"],
            caption="../report/tables.rst",
            category="Tables",
        ),
        figures=report(
            directory(f"{PAPER}/generated/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    params:
        **job_params("scripts/render_report.py"),
        histories_of=HISTORIES_OF,
    log:
        f"{OUT}/logs/render_report.log",
    container:
        CONTAINER
    script:
        "../../scripts/render_report.py"


rule paper:
    input:
        main=str(REPO / "paper" / "main.tex"),
        bib=str(REPO / "paper" / "references.bib"),
        macros=rules.publish_numbers.output.macros,
        tables=rules.render_report.output.tables,
        figures=rules.render_report.output.figures,
    output:
        pdf=report(f"{PAPER}/main.pdf", caption="../report/paper.rst", category="Paper"),
    params:
        **job_params("scripts/build_paper.py"),
    log:
        f"{OUT}/logs/paper.log",
    container:
        CONTAINER
    script:
        "../../scripts/build_paper.py"


if PUBLISH_DIR:

    rule publish_reference:
        input:
            published=rules.publish_numbers.output.published,
            macros=rules.publish_numbers.output.macros,
            tables=rules.render_report.output.tables,
            figures=rules.render_report.output.figures,
        output:
            published=PUBLISHED,
            generated=directory(f"{PUBLISH_DIR}/generated"),
        params:
            **job_params("scripts/publish_reference.py"),
        log:
            f"{OUT}/logs/publish_reference.log",
        container:
            CONTAINER
        script:
            "../../scripts/publish_reference.py"


# Reviewers: recompute every published number from the raw records, without running anything upstream.
#   snakemake --cores 1 verify --allowed-rules verify --forcerun verify     (= make verify)
rule verify:
    input:
        records=published_sources,
        published=PUBLISHED,
        macros=f"{PUBLISH_DIR or PAPER}/generated/macros.tex",  # a path, not a rule's output: verify runs nothing else
    output:
        report=f"{OUT}/verify/verify.txt",
    params:
        **job_params("scripts/verify.py"),
    log:
        f"{OUT}/verify/verify.log",  # outside the DVC-tracked logs/: verifying must not change pulled artifacts
    container:
        CONTAINER
    script:
        "../../scripts/verify.py"
