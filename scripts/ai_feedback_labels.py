"""RL-CAI labels: the feedback model compares two sampled responses per red-team prompt under a sampled principle,
in both option orders; the averaged normalized probability is the soft label. With
`feedback.chain_of_thought.enabled`, reasoning is sampled first and each order's probability is clamped to a band.

    snakemake --cores 2 results/embedded-cpu/seed1/pairs/ai-feedback.jsonl
"""

from collections import defaultdict
from pathlib import Path

from caibase.artifacts import read_jsonl, write_jsonl
from caibase.config import sampling_settings
from caibase.constitution import load_constitution
from caibase.critique import dialogue_prompt
from caibase.feedback import COT_STOPS, ChainOfThought, ai_feedback_labels, soft_label_pairs
from caibase.models import load_model, load_model_info, load_tokenizer
from caibase.provenance import REPO_ROOT, stamp
from caibase.runtime import setup


def main(smk) -> None:
    seed = int(smk.wildcards.seed)
    log = setup(smk.log[0], smk.threads, seed)
    config, feedback = smk.config, smk.params.feedback
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
    provenance = stamp(config, load_model_info(model_dir), seed)
    write_jsonl(smk.output.labels, ({**label, "provenance": provenance} for label in labels))
    pairs = soft_label_pairs(labels, dialogue_prompt)
    write_jsonl(smk.output.pairs, ({**pair, "source": "ai-feedback", "provenance": provenance} for pair in pairs))
    consistent = sum(label["position_consistent"] for label in labels)
    log.info("%d labels, %d position-consistent", len(labels), consistent)


main(snakemake)  # noqa: F821
