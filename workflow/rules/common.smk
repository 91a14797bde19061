import shutil
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

from caibase.config import ConfigError, check_config, prompt_set_paths, prompt_set_specs, seed_prompt_set_file
from caibase.config import stage_resources as _stage_resources
from caibase import layout
from caibase.fingerprint import job_config, library_fingerprint
from caibase.vocabulary import (
    AI_FEEDBACK,
    BASE,
    DPO_AIF,
    DPO_POLICIES,
    INSTRUCT_REF,
    PAIRS_PATTERN,
    POLICY_OF_PAIRS,
    POLICY_PATTERN,
    REVISION,
    SFT,
    SLCAI,
    pairs_of,
    parse_sweep_policy,
    sweep_policy,
)

REPO = Path(workflow.basedir)

try:
    check_config(config, REPO)
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}") from None

OUT = layout.run_dir(config["run_name"])
SEEDS = config["seeds"]
CONDITIONS = config["evaluation"]["conditions"]
SOURCE_PROMPT_FILES = {name: str(path) for name, path in prompt_set_paths(config, REPO).items()}
# `seed-2025:<set>` prompt sets: written by the rule seed_prompt_set (workflow/rules/prompts.smk) from the pinned study.
SEED_PROMPT_SETS = {
    name: spec.split(":", 1)[1] for name, spec in prompt_set_specs(config).items() if spec.startswith("seed-2025:")
}
SEED_PROTOCOL = config["prompts"].get("seed_protocol", "held_out")
SOURCE_PROMPT_FILES |= {name: seed_prompt_set_file(config, seed_set) for name, seed_set in SEED_PROMPT_SETS.items()}
EVAL_SETS = list(config["prompts"]["eval"])
# The red-team set is built per run (limit, optional HH-RLHF prompts); the others are used as shipped.
PROMPT_FILES = {**SOURCE_PROMPT_FILES, "redteam_train": f"{OUT}/prompts/redteam_train.jsonl"}
SWEEP = config["dpo"]["sweep"]
SWEEP_POLICIES = [sweep_policy(pairs, n) for pairs in SWEEP["pairs"] for n in SWEEP["sizes"]]
CONTAINER = config["container"]


wildcard_constraints:
    seed=r"\d+",
    policy=POLICY_PATTERN,
    pairs=PAIRS_PATTERN,


def policy_adapters(wildcards):
    """LoRA adapters merged, in order, into the model for a policy (caibase.layout.policy_adapters); none for
    base and the instruct reference (policy_model)."""
    return layout.policy_adapters(OUT, wildcards.seed, wildcards.policy)


# The config as the jobs that run the instruct reference read it: their `model` is evaluation.instruct_reference.
REFERENCE_CONFIG = {**config, "model": config["evaluation"].get("instruct_reference")}


def policy_model(wildcards):
    """The prepared model a policy generates from: the instruct reference (rule prepare_reference_model) for
    instruct_ref, the run's model, with the policy's adapters merged in, otherwise. Matched prompting, as in the
    study, which prompted each model in its native format: the instruct reference with its chat template, the
    policies in the dialogue format they are trained on (scripts/generate_responses.py)."""
    if wildcards.policy == INSTRUCT_REF:
        return rules.prepare_reference_model.output.info
    return rules.prepare_model.output.info


def job_params(script, *config_keys, of=config):
    """What a job depends on besides its input files, passed as params so that a change reruns it (and, through
    their inputs, its descendants): `config`, the config sections or dotted keys its script reads (it reads no
    other) from the config `of`, and `library`, a fingerprint of the caibase modules the script imports (see
    caibase.fingerprint)."""
    return {"config": job_config(of, *config_keys), "library": library_fingerprint(script)}


def policy_job_params(script, *config_keys):
    """job_params for generating from a policy's model (policy_model), read from REFERENCE_CONFIG for
    instruct_ref, so that the script sees the instruct reference as its `model` (dtype, provenance)."""
    params, reference = job_params(script, *config_keys), job_config(REFERENCE_CONFIG, *config_keys)
    return {**params, "config": lambda wildcards: reference if wildcards.policy == INSTRUCT_REF else params["config"]}


def stage_resources(stage):
    """Resources of one job of a stage (`resources.<stage>` in the config over the schema's defaults)."""
    return _stage_resources(config, stage, REPO / "workflow" / "schemas" / "config.schema.yaml")


def benchmark_file(name):
    """Where `benchmark:` writes a job's wall time, CPU time, memory and I/O (caibase.layout.benchmark_path): `name`
    is the rule's name, then the job's wildcards below it (`sft/seed{seed}`). The TSVs are git-versioned
    (dvc.yaml): the cost table is verified."""
    return layout.benchmark_path(OUT, name)


def policy_eval_sets(wildcards):
    """Evaluation sets a policy is generated and judged on: all of them, or the sweep's for a sweep point."""
    return SWEEP["eval_sets"] if parse_sweep_policy(wildcards.policy) else EVAL_SETS


def data_scale_points():
    """Every point of the sweep per seed and pairs: SFT (no DPO), each subsample size, and the full pool."""
    points = []
    for seed in SEEDS:
        for pairs in SWEEP["pairs"]:
            points.append({"seed": seed, "pairs": pairs, "point": SFT, "policy": SFT, "adapter": None})
            points += [
                {
                    "seed": seed,
                    "pairs": pairs,
                    "point": f"n{n}",
                    "policy": sweep_policy(pairs, n),
                    "adapter": layout.adapter_dir(layout.dpo_dir(OUT, seed, pairs, n)),
                }
                for n in SWEEP["sizes"]
            ]
            points.append(
                {
                    "seed": seed,
                    "pairs": pairs,
                    "point": "full",
                    "policy": POLICY_OF_PAIRS[pairs],
                    "adapter": layout.adapter_dir(layout.dpo_dir(OUT, seed, pairs)),
                }
            )
    return points


def paper_pdf_wanted():
    """Whether the paper's PDF is a target (and so a `--report` item): when latexmk is on PATH, or when the PDF
    already exists (e.g. pulled). Checked once, at parse time; without TeX everything else still runs and reports."""
    pdf = f"{OUT}/paper/main.pdf"
    if LATEXMK or Path(pdf).exists():
        return True
    logger.info(
        f"latexmk not found on PATH: {pdf} is left out of the targets and of `snakemake --report` "
        "(install TeX Live with latexmk and pdflatex to build the paper)"
    )
    return False


LATEXMK = shutil.which("latexmk")
PAPER_PDF = paper_pdf_wanted()


def final_outputs():
    return [
        f"{OUT}/tables/summary_by_condition.csv",
        f"{OUT}/tables/per_seed.csv",
        f"{OUT}/metrics.json",
        f"{OUT}/tables/judge_agreement.csv",
        f"{OUT}/prompts/sources.json",
        f"{OUT}/paper/published.json",  # with the generated tables and figures: the write-up's parts, TeX or not
        f"{OUT}/paper/generated/tables",
        f"{OUT}/paper/generated/figures",
        *([f"{OUT}/paper/main.pdf"] if PAPER_PDF else []),
        *([f"{OUT}/tables/data_scale.csv"] if SWEEP_POLICIES else []),
        *([f"{config['report']['publish_dir']}/published.json"] if config["report"]["publish_dir"] else []),
    ]


def seed_study_summary():
    """At parse time (so a dry run shows it): the sizes of the replicated study's sets and principles this config
    uses, when its pinned files are at hand (mirror or cache); otherwise the rule fetches them when it runs."""
    if not SEED_PROMPT_SETS and config["constitution"] != "seed-2025":
        return
    from caibase.seed2025 import SeedSourceError, load_study, prompt_set_records
    from caibase.sources import SourceError

    try:
        study = load_study()
    except (SourceError, SeedSourceError) as err:
        logger.warning(f"seed-2025: the study's files are not available yet ({err}); rule seed_prompt_set fetches them")
        return
    logger.info(f"seed-2025 (bledden/cai-tinkerideas, pinned): {study.summary()}")
    used = ", ".join(
        f"{name}={len(prompt_set_records(seed_set, SEED_PROTOCOL, study))}"
        for name, seed_set in SEED_PROMPT_SETS.items()
    )
    logger.info(f"seed-2025 prompt sets of this run (prompts.seed_protocol={SEED_PROTOCOL}): {used}")


def seed_judge_sources(wildcards):
    """The replicated study's files when a judge asks with its prompts (`prompts: seed-2025`): fetched (mirror or
    upstream) and sha256-checked here, inputs of the jobs that read the judge prompts from them. Where they cannot
    be fetched yet (offline, no mirror) a dry run still plans the study, as seed_study_summary does; the jobs then
    fetch them (sha256-checked) or fail saying why."""
    evaluation = config["evaluation"]
    if all((evaluation.get(key) or {}).get("prompts") != "seed-2025" for key in ("judge", "score_judge")):
        return []
    from caibase.seed2025 import FILES
    from caibase.sources import SourceError, fetch

    try:
        return [str(fetch(name)) for name in FILES]
    except SourceError as err:
        logger.warning(f"seed-2025 judge prompts (evaluation.*.prompts): not available yet ({err})")
        return []


def judge_label_files(wildcards):
    """The labeled files judges are validated on (inputs: a changed file reruns the rule). One not merged from its
    label passes yet passes check_config but stops here, with how to merge it (caibase.judge_validation)."""
    from caibase.judge_validation import load_labeled

    paths = [REPO / path for path in config["evaluation"]["judge_validation"]["labeled"]]
    for path in paths:
        if not path.is_file():
            load_labeled(path)  # raises, saying what is missing and how to make it
    return [str(path) for path in paths]


def judge_canary_file(wildcards):
    """The score canary the score judge is gated on (caibase.judge_gate); none without a score judge."""
    if not config["evaluation"].get("score_judge"):
        return []
    from caibase.judge_validation import load_canary

    path = REPO / config["evaluation"]["judge_gate"]["canary"]
    load_canary(path)  # a missing or malformed file stops the DAG here, naming the line and field
    return str(path)


def published_sources(wildcards):
    """verify's inputs: exactly the files published.json names as sources (the raw records before it exists;
    PUBLISHED and RAW_RECORDS are defined in report.smk)."""
    if not Path(PUBLISHED).is_file():
        return [path for paths in RAW_RECORDS.values() for path in ([paths] if isinstance(paths, str) else paths)]
    import json

    numbers = json.loads(Path(PUBLISHED).read_text(encoding="utf-8"))["numbers"]
    return sorted({source for number in numbers for source in number["sources"]})


def policy_stages(policy):
    """The benchmarked rules (name, wildcards besides the seed) that generating and judging a policy depends on,
    mirroring their inputs: its adapters (SFT, SL-CAI SFT, DPO or a sweep point's DPO), the revisions or AI-feedback
    pairs they are trained on, and the red-team responses (sampled from the SFT adapter) both come from."""
    point = parse_sweep_policy(policy)
    pairs = pairs_of(policy)
    stages = [("generate_eval", {"policy": policy}), ("judge", {"policy": policy})]
    if point:
        stages.append(("dpo_subsample", {"pairs": pairs, "n_pairs": point[1]}))
    elif pairs:
        stages.append(("dpo", {"pairs": pairs}))
    if policy == SLCAI:
        stages.append(("slcai_sft", {}))
    if policy == SLCAI or pairs == REVISION:
        stages.append(("critique_revise", {}))
    if pairs == AI_FEEDBACK:
        stages.append(("ai_feedback_labels", {}))
    if policy == SLCAI or pairs:
        stages.append(("generate_redteam", {}))
    if policy not in (BASE, INSTRUCT_REF):
        stages.append(("sft", {}))
    return stages


def upstream_benchmarks():
    """publish_numbers' benchmark inputs, for its cost table: the TSVs of every job it depends on (they ran before
    it; publish_numbers and the rules after it have no benchmark): per seed, the stages of each evaluated policy (the
    conditions and the sweep's points); once per run, the model and the judges' and feedback model's validation
    (the rules it names are defined by the rule files included after this one); the instruct reference's model
    when instruct_ref is evaluated."""
    files = {rules.prepare_model.benchmark, rules.validate_judges.benchmark}
    if INSTRUCT_REF in CONDITIONS:
        files.add(rules.prepare_reference_model.benchmark)
    if config["feedback"]["validate"]:
        files.add(rules.validate_feedback_model.benchmark)
    policies = set(CONDITIONS) | ({p["policy"] for p in data_scale_points()} if SWEEP_POLICIES else set())
    for seed in SEEDS:
        for policy in policies:
            for rule, wildcards in policy_stages(policy):
                files.add(getattr(rules, rule).benchmark.format(seed=seed, **wildcards))
    return sorted(map(str, files))
