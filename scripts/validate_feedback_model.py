"""Score the feedback model (the prepared model, no adapters) on labeled comparisons: the paper's HHH evaluation and
HH-RLHF harmless-base chosen/rejected pairs. Per-item records, then accuracy (Wilson 95% CI), position
consistency and calibration computed from them, and the feedback-model gate (caibase.feedback_gate): with
`feedback.gate.on_fail: fail` the job fails, after logging the numbers, when the gate does not pass.

    snakemake --cores 2 results/embedded-cpu/feedback/validation/summary.json
"""

from pathlib import Path

from caibase.artifacts import write_json, write_jsonl
from caibase.constitution import load_constitution
from caibase.feedback import fewshot_prefix, hh_rlhf_labeled_pairs, score_hhh, score_labeled_pairs
from caibase.feedback_gate import FeedbackGateError, as_record, enforce, feedback_gate
from caibase.metrics import validation_summary
from caibase.models import load_model, load_model_info, load_tokenizer
from caibase.provenance import REPO_ROOT, stamp
from caibase.records import FeedbackValidationRecord, check_records
from caibase.runtime import setup
from caibase.sources import hh_rlhf_harmless_rows, hhh_rows


def main(smk) -> None:
    log = setup(smk.log[0], smk.threads, 0)
    config, feedback = smk.params.config, smk.params.feedback
    model_dir = Path(smk.input.model).parent
    model = load_model(model_dir, dtype=config["model"]["dtype"], device=config["device"])
    tokenizer = load_tokenizer(model_dir)
    constitution = load_constitution(config["constitution"], REPO_ROOT)
    provenance = stamp(config, load_model_info(model_dir), None)

    hhh = score_hhh(model, tokenizer, hhh_rows(feedback["hhh_sample"]), batch_size=feedback["batch_size"])
    pairs = hh_rlhf_labeled_pairs(hh_rlhf_harmless_rows(), feedback["hh_rlhf_pairs"])
    hh_rlhf = score_labeled_pairs(model, tokenizer, pairs, constitution,
                                  fewshot_prefix(constitution, feedback["fewshot_examples"]),
                                  batch_size=feedback["batch_size"])
    write_jsonl(smk.output.hhh, check_records(({**r, "dataset": f"hhh-{feedback['hhh_sample']}"} for r in hhh),
                                              FeedbackValidationRecord))
    write_jsonl(smk.output.hh_rlhf, check_records(({**r, "dataset": "hh-rlhf-harmless-base"} for r in hh_rlhf),
                                                  FeedbackValidationRecord))
    summary = {
        "feedback_model": "prepared model, no adapters",
        "hhh": {"sample": feedback["hhh_sample"], **validation_summary(hhh)},
        "hh_rlhf_harmless_base": validation_summary(hh_rlhf),
        "provenance": provenance,
    }
    gate = feedback_gate(summary)
    write_json(smk.output.summary, {**summary, "gate": as_record(gate)})
    log.info("HHH accuracy %.3f %s; HH-RLHF accuracy %.3f %s", summary["hhh"]["accuracy"],
             summary["hhh"]["accuracy_ci95_wilson"], summary["hh_rlhf_harmless_base"]["accuracy"],
             summary["hh_rlhf_harmless_base"]["accuracy_ci95_wilson"])
    log.info("feedback-model gate: %s", "passed" if gate.valid else f"not passed, {gate.reason}")
    try:
        enforce(gate, feedback["gate"]["on_fail"])
    except FeedbackGateError as err:
        log.error("%s", err)
        raise


main(snakemake)  # noqa: F821
