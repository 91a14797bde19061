"""Judge one set of responses; one record per response. Fails loudly when judge failures exceed the allowed share.

    snakemake --cores 1 results/embedded-cpu/seed1/judged/dpo/jailbreak.jsonl
"""

from caibase.artifacts import read_jsonl, sha256_text, write_jsonl
from caibase.judges import canary_check, make_judge
from caibase.runtime import setup


def main(smk) -> None:
    log = setup(smk.log[0])
    judge = make_judge(smk.params.judge)
    log.info("canary check: %s", canary_check(judge))
    records = read_jsonl(smk.input.responses)
    judged = [
        {"id": r["id"], "prompt_set": r["prompt_set"], "category": r["category"], "condition": r["policy"],
         "seed": r["provenance"]["seed"], "response": r["response"], "response_sha256": sha256_text(r["response"]),
         "new_tokens": r["new_tokens"], "truncated": r["truncated"], "judge": judge.name,
         "judge_backend": judge.backend, "judge_model": judge.model, "judge_is_proxy": judge.is_proxy,
         "judge_template_sha256": judge.template_sha256, **judge.judge(r["prompt"], r["response"]),
         "provenance": r["provenance"]}
        for r in records
    ]
    failed = sum(j["status"] not in ("ok",) for j in judged)
    share = failed / len(judged)
    if share > smk.params.max_failure_share:
        raise SystemExit(f"{smk.input.responses}: {failed}/{len(judged)} judge failures exceed "
                         f"{smk.params.max_failure_share:.0%}; see raw_judge_output in the log")
    write_jsonl(smk.output.judged, judged)
    log.info("judged %d responses with %s (%d failures)", len(judged), judge.name, failed)


main(snakemake)  # noqa: F821
