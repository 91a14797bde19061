"""Sample responses (`n_samples` per prompt) from a policy (base, sft, slcai, dpo, dpo_aif; instruct_ref: the instruct
reference, evaluation.instruct_reference) for one seed, over one or more prompt sets, the first `limit` prompts of each
taken round-robin over its categories. `input.model` is the policy's prepared model and `config["model"]` its entry.
Matched prompting, as in the study, which prompted each model in its native format: instruct_ref with its chat
template, the CAI policies (trained on Human:/Assistant: dialogues) in that dialogue format.
Finished batches go to a `.partial` file first, so a killed job resumes where it stopped.
A prompt with a `reference` answer (the helpful set) also gets `reference_logprob` and `reference_tokens`: the
policy's mean per-token log-likelihood of that answer after the same formatted prompt (caibase.likelihood), computed
with the same weights; it samples nothing, so the responses are those generated without it.

    snakemake --cores 2 results/embedded-cpu/seed1/slcai/responses.jsonl      # SFT policy on red-team prompts
    snakemake --cores 2 results/embedded-cpu/seed1/eval/dpo/responses.jsonl   # a condition on the eval sets
"""

from pathlib import Path

import torch

from caibase.artifacts import write_jsonl
from caibase.backends import load_generation_model
from caibase.config import sampling_settings
from caibase.generation import degenerate_reason, generate, remove_shard, sample_seed, shard_identity
from caibase.likelihood import reference_fields, reference_scores
from caibase.models import load_model, load_model_info, load_tokenizer
from caibase.prompts import RESPONSE_STOPS, chat_prompt, dialogue_prompt, head_by_category, load_prompt_set
from caibase.provenance import stamp
from caibase.records import ResponseRecord, check_records
from caibase.runtime import setup
from caibase.vocabulary import INSTRUCT_REF


def main(smk) -> None:
    seed, policy = int(smk.wildcards.seed), smk.params.policy
    log = setup(smk.log[0], smk.threads, seed)
    config = smk.params.config
    model_dir = Path(smk.input.model).parent
    records = []
    for name, path in zip(smk.params.prompt_sets, smk.input.prompts, strict=True):
        limit = smk.params.limit.get(name) if isinstance(smk.params.limit, dict) else smk.params.limit
        prompts = head_by_category(load_prompt_set(name, path).records, limit)
        records += [{**r, "prompt_set": name, "prompt_file": path, "sample": k}
                    for r in prompts for k in range(smk.params.n_samples)]
    settings = sampling_settings(smk.params.sampling, RESPONSE_STOPS)
    tokenizer = load_tokenizer(model_dir)
    backend = config["generation"]["backend"]
    format_prompt = (lambda text: chat_prompt(tokenizer, text)) if policy == INSTRUCT_REF else dialogue_prompt
    completion_prefix = "" if policy == INSTRUCT_REF else " "  # a dialogue completion starts with a space (SFT)
    has_references = any(r.get("reference") for r in records)
    references = {}
    if has_references and backend != "hf":  # the same weights in transformers, freed before the engine loads
        hf_model = load_model(model_dir, adapters=list(smk.input.adapters), dtype=config["model"]["dtype"],
                              device=config["device"])
        references = reference_scores(hf_model, tokenizer, records, format_prompt, completion_prefix,
                                      settings.batch_size)
        del hf_model
        torch.cuda.empty_cache()
    model = load_generation_model(model_dir, adapters=smk.input.adapters, dtype=config["model"]["dtype"],
                                  device=config["device"], backend=backend, seed=seed)
    shard = f"{smk.output.responses}.partial"
    generations = generate(
        model, tokenizer, [format_prompt(r["prompt"]) for r in records], settings,
        [sample_seed(seed, f"{policy}:{r['prompt_set']}:{r['id']}" + (f":s{r['sample']}" if r["sample"] else ""))
         for r in records], shard_path=shard,
        identity=shard_identity(model_dir, smk.input.adapters, backend),
        prompt_ids=[f"{r['prompt_file']} id {r['id']}" for r in records],
    )
    if has_references and backend == "hf":  # after generating, with the model that generated
        references = reference_scores(model, tokenizer, records, format_prompt, completion_prefix, settings.batch_size)
    provenance = stamp(config, load_model_info(model_dir), seed)
    write_jsonl(smk.output.responses, check_records((
        {"id": r["id"], "sample": r["sample"], "prompt_set": r["prompt_set"], "category": r["category"],
         "prompt": r["prompt"], "style": r.get("style"),
         "policy": policy, "response": g.text, "prompt_tokens": g.prompt_tokens, "new_tokens": g.new_tokens,
         "stop": g.stop, "truncated": g.truncated, "degenerate": degenerate_reason(g.text, r["prompt"]),
         **reference_fields(references.get((r["prompt_set"], r["id"]))),
         "generation": {**settings.asdict(), "backend": backend}, "provenance": provenance}
        for r, g in zip(records, generations, strict=True)
    ), ResponseRecord))
    remove_shard(shard)
    log.info("%d responses from %s on %s", len(records), policy, ", ".join(smk.params.prompt_sets))


main(snakemake)  # noqa: F821
