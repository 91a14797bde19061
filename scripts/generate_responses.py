"""Sample one response per prompt of a prompt set from a policy (base, sft or dpo) for one seed.

    snakemake --cores 2 results/embedded-cpu/seed1/responses/sft/redteam_train.jsonl
"""

import os
from pathlib import Path

from caibase.artifacts import write_jsonl
from caibase.config import sampling_settings
from caibase.critique import RESPONSE_STOPS, dialogue_prompt
from caibase.generation import degenerate_reason, generate, sample_seed
from caibase.models import load_model, load_model_info, load_tokenizer
from caibase.prompts import load_prompt_set
from caibase.provenance import stamp
from caibase.runtime import setup


def main(smk) -> None:
    seed, policy, prompt_set = int(smk.wildcards.seed), smk.wildcards.policy, smk.wildcards.prompt_set
    log = setup(smk.log[0], smk.threads, seed)
    config = smk.config
    model_dir = Path(smk.input.model).parent
    records = list(load_prompt_set(prompt_set, smk.input.prompts).records)
    limit = config["prompts"]["redteam_limit" if prompt_set == "redteam_train" else "eval_limit"]
    records = records[:limit] if limit else records
    sampling = config["generation"] if prompt_set == "redteam_train" else config["evaluation"]["sampling"]
    settings = sampling_settings(sampling, RESPONSE_STOPS)
    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir, adapters=smk.input.adapters, dtype=config["model"]["dtype"], device=config["device"])
    shard = f"{smk.output.responses}.partial"  # finished batches; a rerun resumes from them
    generations = generate(
        model, tokenizer, [dialogue_prompt(r["prompt"]) for r in records], settings,
        [sample_seed(seed, f"{policy}:{prompt_set}:{r['id']}") for r in records], shard_path=shard,
    )
    provenance = stamp(config, load_model_info(model_dir), seed)
    write_jsonl(smk.output.responses, (
        {"id": r["id"], "prompt_set": prompt_set, "category": r["category"], "prompt": r["prompt"],
         "policy": policy, "response": g.text, "prompt_tokens": g.prompt_tokens, "new_tokens": g.new_tokens,
         "stop": g.stop, "truncated": g.truncated, "degenerate": degenerate_reason(g.text, r["prompt"]),
         "generation": settings.asdict(), "provenance": provenance}
        for r, g in zip(records, generations, strict=True)
    ))
    os.remove(shard)
    log.info("%d responses from %s on %s", len(records), policy, prompt_set)


main(snakemake)  # noqa: F821
