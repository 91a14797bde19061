"""Judge-free helpfulness proxy: a policy's per-token log-likelihood of reference answers (the alignment tax).

The score judges are not usable on CPU (the 135M judge rates nearly everything 1), so the helpful set also carries a
`reference` answer per prompt, and the metric `reference_loglik` (caibase.metrics) is the mean per-token natural-log
probability the evaluated policy gives that answer after the prompt, formatted as generation formats it. Higher is
better; a drop from SFT to a CAI condition is the alignment tax on helpful answers. The reference answers in
`data/prompts/helpful_eval.jsonl` were written by an LLM agent for this package, not by people.

Tokens follow the one rule of `caibase.models`: the prompt is `encode_prompt(prompt)`, the ids generation conditions
on, and the continuation's tokens are those of `encode_prompt(prompt + continuation)` beyond them. Nothing here
samples, so it draws nothing from any random generator. (`caibase.feedback.option_logprobs` scores the same two short
options after every prompt, the second on the first's cut KV cache; here every item has its own continuation.)
"""

from __future__ import annotations

from collections.abc import Sequence

from caibase.forward import batch_plan, forward, left_pad, token_logprobs
from caibase.models import encode_prompt


def continuation_ids(tokenizer, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    """(prompt ids, continuation ids): `encode_prompt` of the prompt, and the tokens of `encode_prompt(prompt +
    continuation)` after them. Raises ValueError when the tokenizer merges the two across the boundary (the prompt's
    ids are then no prefix) or the continuation has no token."""
    prompt_ids = encode_prompt(tokenizer, prompt)
    full = encode_prompt(tokenizer, prompt + continuation)
    if full[: len(prompt_ids)] != prompt_ids:
        raise ValueError(f"the tokens of prompt + continuation do not start with the prompt's: {prompt[-60:]!r} + "
                         f"{continuation[:60]!r}")
    if len(full) == len(prompt_ids):
        raise ValueError(f"the continuation {continuation[:60]!r} has no token")
    return prompt_ids, full[len(prompt_ids):]


def continuation_logprobs(model, tokenizer, prompts: Sequence[str], continuations: Sequence[str],
                          batch_size: int = 8) -> list[tuple[float, int]]:
    """For each (prompt, continuation): (mean per-token natural-log probability of the continuation given the prompt,
    number of continuation tokens), by teacher forcing.

    Items are batched and padded by `caibase.forward` (longest first, left-padded, positions from each row's first
    real token); only the last positions, where the continuations lie, are turned into log-probabilities.
    """
    if len(prompts) != len(continuations):
        raise ValueError("one continuation per prompt is required")
    items = [continuation_ids(tokenizer, p, c) for p, c in zip(prompts, continuations, strict=True)]
    device = next(model.parameters()).device
    results: list[tuple[float, int]] = [(0.0, 0)] * len(items)
    for rows in batch_plan([len(prompt) + len(continuation) for prompt, continuation in items], batch_size):
        batch = left_pad([items[i][0] + items[i][1] for i in rows], tokenizer.pad_token_id, device)
        tail = max(len(items[i][1]) for i in rows)
        # the logits at the last tail + 1 positions predict every row's continuation tokens (right-aligned)
        logits = forward(model, batch, use_cache=False, logits_to_keep=tail + 1).logits[:, :-1]
        logprobs = token_logprobs(logits, batch.input_ids[:, -tail:])
        for row, i in enumerate(rows):
            n = len(items[i][1])
            results[i] = (logprobs[row, tail - n :].mean().item(), n)
    return results


def reference_scores(model, tokenizer, records: list[dict], format_prompt, completion_prefix: str,
                     batch_size: int) -> dict[tuple[str, str], tuple[float, int]]:
    """(prompt set, id) -> (mean per-token log-probability, tokens) of each prompt's `reference` answer, continuing
    `format_prompt(prompt)` as training completions do (`completion_prefix` + the stripped answer)."""
    rows = list({(r["prompt_set"], r["id"]): r for r in records if r.get("reference")}.items())
    scores = continuation_logprobs(model, tokenizer, [format_prompt(r["prompt"]) for _, r in rows],
                                   [completion_prefix + r["reference"].strip() for _, r in rows], batch_size)
    return {key: score for (key, _), score in zip(rows, scores, strict=True)}


def reference_fields(score: tuple[float, int] | None) -> dict:
    """A response record's reference fields: present only for prompts with a reference answer."""
    return {} if score is None else {"reference_logprob": score[0], "reference_tokens": score[1]}
