"""Judge one set of responses (refusal-phrase proxy judge by default); one record per response.

    snakemake --cores 1 results/embedded-cpu/seed1/judged/dpo/jailbreak.jsonl
"""

from caibase.artifacts import read_jsonl, sha256_text, write_jsonl
from caibase.judges import make_judge
from caibase.runtime import setup


def main(smk) -> None:
    log = setup(smk.log[0])
    judge = make_judge(smk.params.judge)
    records = read_jsonl(smk.input.responses)
    write_jsonl(smk.output.judged, (
        {"id": r["id"], "prompt_set": r["prompt_set"], "category": r["category"], "condition": r["policy"],
         "seed": r["provenance"]["seed"], "response_sha256": sha256_text(r["response"]),
         "new_tokens": r["new_tokens"], "truncated": r["truncated"], "judge": judge.name,
         "judge_is_proxy": judge.is_proxy, **judge.judge(r["response"]), "provenance": r["provenance"]}
        for r in records
    ))
    log.info("judged %d responses with %s", len(records), judge.name)


main(snakemake)  # noqa: F821
