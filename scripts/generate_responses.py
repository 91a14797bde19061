"""Sample responses (`n_samples` per prompt) from a policy (base, sft, slcai, dpo, dpo_aif; instruct_ref: the instruct
reference, evaluation.instruct_reference) for one seed, over one or more prompt sets, the first `limit` prompts of each
taken round-robin over its categories. `input.model` is the policy's prepared model and `config["model"]` its entry.
Matched prompting, as in the study, which prompted each model in its native format: instruct_ref with its chat
template, the CAI policies (trained on Human:/Assistant: dialogues) in that dialogue format.
Finished batches go to a `.partial` file first, so a killed job resumes where it stopped.

    snakemake --cores 2 results/embedded-cpu/seed1/slcai/responses.jsonl      # SFT policy on red-team prompts
    snakemake --cores 2 results/embedded-cpu/seed1/eval/dpo/responses.jsonl   # a condition on the eval sets
"""

from pathlib import Path

from caibase.artifacts import write_jsonl
from caibase.backends import load_generation_model
from caibase.config import sampling_settings
from caibase.generation import degenerate_reason, generate, remove_shard, sample_seed, shard_identity
from caibase.models import load_model_info, load_tokenizer
from caibase.prompts import RESPONSE_STOPS, chat_prompt, dialogue_prompt, head_by_category, load_prompt_set
from caibase.provenance import stamp
from caibase.runtime import setup


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
    model = load_generation_model(model_dir, adapters=smk.input.adapters, dtype=config["model"]["dtype"],
                                  device=config["device"], backend=backend, seed=seed)
    shard = f"{smk.output.responses}.partial"
    format_prompt = (lambda text: chat_prompt(tokenizer, text)) if policy == "instruct_ref" else dialogue_prompt
    generations = generate(
        model, tokenizer, [format_prompt(r["prompt"]) for r in records], settings,
        [sample_seed(seed, f"{policy}:{r['prompt_set']}:{r['id']}" + (f":s{r['sample']}" if r["sample"] else ""))
         for r in records], shard_path=shard,
        identity=shard_identity(model_dir, smk.input.adapters, backend),
        prompt_ids=[f"{r['prompt_file']} id {r['id']}" for r in records],
    )
    provenance = stamp(config, load_model_info(model_dir), seed)
    write_jsonl(smk.output.responses, (
        {"id": r["id"], "sample": r["sample"], "prompt_set": r["prompt_set"], "category": r["category"],
         "prompt": r["prompt"], "style": r.get("style"),
         "policy": policy, "response": g.text, "prompt_tokens": g.prompt_tokens, "new_tokens": g.new_tokens,
         "stop": g.stop, "truncated": g.truncated, "degenerate": degenerate_reason(g.text, r["prompt"]),
         "generation": {**settings.asdict(), "backend": backend}, "provenance": provenance}
        for r, g in zip(records, generations, strict=True)
    ))
    remove_shard(shard)
    log.info("%d responses from %s on %s", len(records), policy, ", ".join(smk.params.prompt_sets))


main(snakemake)  # noqa: F821
