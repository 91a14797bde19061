"""RL-CAI labels: the feedback model compares two sampled responses per red-team prompt under a sampled principle,
in both option orders; the averaged normalized probability is the soft label. With
`feedback.chain_of_thought.enabled`, reasoning is sampled first and each order's probability is clamped to a band.
Labels whose two orders disagree (position-inconsistent) are dropped under `feedback.position_inconsistent: drop`
(the default) or kept under `keep`; each label record says whether it became a pair (`kept`, `position_rule`), the
log gives the counts, and the stage fails when the rule drops every label of a seed. Each pair keeps its soft label
`p_chosen`, which DPO uses per pair (conservative DPO, caibase.cdpo).

    snakemake --cores 2 results/embedded-cpu/seed1/pairs/ai-feedback.jsonl
"""

from collections import defaultdict
from pathlib import Path

from caibase.artifacts import read_jsonl, write_jsonl
from caibase.config import sampling_settings
from caibase.constitution import load_constitution
from caibase.feedback import (
    COT_STOPS,
    ChainOfThought,
    NoPairsError,
    ai_feedback_labels,
    position_filter,
    soft_label_pairs,
)
from caibase.models import load_model, load_model_info, load_tokenizer
from caibase.prompts import dialogue_prompt
from caibase.provenance import REPO_ROOT, stamp
from caibase.records import FeedbackLabelRecord, PairRecord, check_records
from caibase.runtime import setup
from caibase.vocabulary import AI_FEEDBACK


def main(smk) -> None:
    seed = int(smk.wildcards.seed)
    log = setup(smk.log[0], smk.threads, seed)
    config, feedback = smk.params.config, smk.params.feedback
    samples = defaultdict(dict)
    for record in read_jsonl(smk.input.responses):
        samples[record["id"]][record["sample"]] = record
    items = [{"id": pid, "prompt": s[0]["prompt"], "response_1": s[0]["response"], "response_2": s[1]["response"]}
             for pid, s in samples.items()
             if 1 in s and not s[0]["degenerate"] and not s[1]["degenerate"] and s[0]["response"] != s[1]["response"]]
    log.info("%d of %d prompts have two usable, distinct samples", len(items), len(samples))
    model_dir = Path(smk.input.model).parent
    model = load_model(model_dir, dtype=config["model"]["dtype"], device=config["device"])
    cot = feedback["chain_of_thought"]
    chain_of_thought = None
    if cot["enabled"]:
        chain_of_thought = ChainOfThought(sampling_settings(cot["sampling"], COT_STOPS), tuple(cot["clamp"]))
    labels = ai_feedback_labels(model, load_tokenizer(model_dir), items,
                                load_constitution(config["constitution"], REPO_ROOT), seed,
                                feedback["fewshot_examples"], feedback["batch_size"], chain_of_thought)
    try:  # every label record says whether it became a pair (`kept`) and by which rule (`position_rule`)
        labels, counts = position_filter(labels, feedback["position_inconsistent"])
    except NoPairsError as err:
        log.error("seed %d: %s", seed, err)
        raise
    log.info("%d labels, %d position-inconsistent; feedback.position_inconsistent: %s dropped %d, %d pairs",
             counts["total"], counts["position_inconsistent"], counts["rule"], counts["dropped"], counts["kept"])
    provenance = stamp(config, load_model_info(model_dir), seed)
    write_jsonl(smk.output.labels, check_records(({**label, "provenance": provenance} for label in labels),
                                                 FeedbackLabelRecord))
    pairs = soft_label_pairs(labels, dialogue_prompt)
    write_jsonl(smk.output.pairs, check_records(
        ({**pair, "source": AI_FEEDBACK, "provenance": provenance} for pair in pairs), PairRecord))


main(snakemake)  # noqa: F821
