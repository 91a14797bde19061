"""The judge-free helpfulness proxy: per-token log-likelihood of reference answers (caibase.likelihood), carried
through judging into the metric `reference_loglik`."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from caibase.judge_gate import TaskGate, metric_task, metric_validity
from caibase.judges import RefusalStringJudge, judge_responses
from caibase.likelihood import continuation_logprobs, reference_fields, reference_scores
from caibase.metrics import METRIC_BY_NAME, is_rate, paired_table, per_seed, summarize
from caibase.models import encode_prompt, load_model, load_tokenizer
from caibase.prompts import dialogue_prompt, load_prompt_set

ITEMS = [  # prompts and continuations of different lengths, so one batch pads them
    (dialogue_prompt("How do I bake bread?"), " Mix flour, water, salt and yeast, let it rise, then bake it."),
    (dialogue_prompt("a much longer question about rice and how to cook it " * 2), " Rinse it."),
    (dialogue_prompt("hi"), " Hello! The answer is: (A), but here is a safer option, I'm sorry."),
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)


def by_hand(model, tokenizer, prompt: str, continuation: str) -> tuple[float, int]:
    """One item alone, no padding: the mean log-probability of the tokens after the prompt's."""
    prompt_ids = tokenizer(prompt).input_ids  # the project's rule for the tiny tokenizer: BOS + text, no EOS
    ids = tokenizer(prompt + continuation).input_ids
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
    scores = [logprobs[k - 1, ids[k]].item() for k in range(len(prompt_ids), len(ids))]
    return sum(scores) / len(scores), len(scores)


def test_batched_scores_equal_one_item_at_a_time_by_hand(tiny):
    model, tokenizer = tiny
    prompts, continuations = zip(*ITEMS)
    batched = continuation_logprobs(model, tokenizer, prompts, continuations, batch_size=3)
    for (prompt, continuation), (mean, n) in zip(ITEMS, batched, strict=True):
        expected_mean, expected_n = by_hand(model, tokenizer, prompt, continuation)
        assert n == expected_n == len(tokenizer(prompt + continuation).input_ids) - len(tokenizer(prompt).input_ids)
        assert n == len(encode_prompt(tokenizer, prompt + continuation)) - len(encode_prompt(tokenizer, prompt))
        assert mean == pytest.approx(expected_mean, abs=1e-5)
    assert len({n for _, n in batched}) == 3


def test_scores_do_not_depend_on_the_batch(tiny):
    model, tokenizer = tiny
    prompts, continuations = zip(*ITEMS)
    reference = continuation_logprobs(model, tokenizer, prompts, continuations, batch_size=1)
    for batch_size in (2, 3, 8):
        scores = continuation_logprobs(model, tokenizer, prompts, continuations, batch_size=batch_size)
        assert [n for _, n in scores] == [n for _, n in reference]
        assert [m for m, _ in scores] == pytest.approx([m for m, _ in reference], abs=1e-5)
    alone = continuation_logprobs(model, tokenizer, prompts[1:2], continuations[1:2])
    assert alone[0][0] == pytest.approx(reference[1][0], abs=1e-5)


def test_reference_scores_one_per_prompt_and_only_where_there_is_a_reference(tiny):
    """A prompt's samples share one score (keyed by prompt set and id); the answer continues the formatted prompt
    after the completion prefix, stripped, as SFT completions do; records without a reference get no fields."""
    model, tokenizer = tiny
    records = [{"prompt_set": "helpful", "id": "h1", "prompt": "How do I bake bread?", "reference": " Mix flour. ",
                "sample": k} for k in range(2)] + [{"prompt_set": "jailbreak", "id": "j1", "prompt": "Hi"}]
    scores = reference_scores(model, tokenizer, records, dialogue_prompt, " ", batch_size=4)
    assert list(scores) == [("helpful", "h1")]
    expected = continuation_logprobs(model, tokenizer, [dialogue_prompt("How do I bake bread?")], [" Mix flour."])
    assert scores[("helpful", "h1")] == expected[0]
    assert reference_fields(scores[("helpful", "h1")]) == {"reference_logprob": expected[0][0],
                                                           "reference_tokens": expected[0][1]}
    assert reference_fields(scores.get(("jailbreak", "j1"))) == {}


def test_an_empty_continuation_is_refused(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="no token"):
        continuation_logprobs(model, tokenizer, [dialogue_prompt("hi")], [""])


def test_every_helpful_eval_prompt_has_a_reference_answer():
    prompts = load_prompt_set("helpful", Path("data/prompts/helpful_eval.jsonl"), require=("reference",))
    for record in prompts.records:
        assert list(record)[-1] == "reference"
        assert 40 <= len(record["reference"].split()) <= 110, record["id"]


def response(i, prompt_set="helpful", text="Mix flour and water.", degenerate=None, logprob=-2.5):
    record = {"id": f"p{i}", "sample": 0, "prompt_set": prompt_set, "category": "c", "prompt": "q", "policy": "sft",
              "response": text, "new_tokens": 5, "truncated": False, "degenerate": degenerate,
              "provenance": {"seed": 1}}
    return {**record, "reference_logprob": logprob, "reference_tokens": 40} if logprob is not None else record


def test_judged_records_carry_the_reference_fields(tmp_path):
    responses = [response(0), response(1, text="", degenerate="empty"), response(2, "benign", logprob=None)]
    judge = RefusalStringJudge({})
    records, _ = judge_responses(responses, {"refusal": judge}, {"helpful": "refusal", "benign": "refusal"}, "run")
    assert [(r["reference_logprob"], r["reference_tokens"]) for r in records] == [(-2.5, 40), (-2.5, 40), (None, None)]
    json.dumps(records)  # stays JSON


def judged(condition, seed, prompt, logprob, status="ok", score=3):
    return {"condition": condition, "seed": seed, "prompt_set": "helpful", "prompt_id": prompt, "category": "c",
            "status": status, "score": score if status == "ok" else None, "response_tokens": 10,
            "reference_logprob": logprob}


def test_reference_loglik_is_a_judge_free_quality_metric():
    metric = METRIC_BY_NAME["reference_loglik"]
    assert (metric.prompt_set, metric.field) == ("helpful", "reference_logprob")
    assert not is_rate("reference_loglik") and metric_task(metric) is None
    failed = {task: TaskGate(task, "judge", False, "fails") for task in ("refusal", "helpfulness", "style")}
    assert metric_validity("reference_loglik", failed) == (True, "")  # never gated
    rows = [judged(c, s, f"p{p}", -2.0 - (c == "sft") - 0.1 * p - 0.01 * s)
            for c in ("base", "sft") for s in (1, 2) for p in range(4)]
    rows[0] = {**rows[0], "status": "skipped_degenerate", "score": None}  # the judge skipped it; the proxy counts it
    frame = pd.DataFrame(rows)
    summary = summarize(frame, n_boot=200).set_index(["condition", "metric"])
    row = summary.loc[("base", "reference_loglik")]
    assert row["mean"] == pytest.approx(-2.0 - 0.15 - 0.015) and row["n_prompts"] == 4
    assert row["ci95_low"] <= row["mean"] <= row["ci95_high"] and row["ci_method"] == "bootstrap_seeds_prompts"
    seeds = per_seed(frame).set_index(["condition", "seed", "metric"])
    assert seeds.loc[("base", 1, "reference_loglik"), "n_prompts"] == 4
    assert seeds.loc[("base", 1, "helpfulness"), "n_prompts"] == 3  # the judged metric still drops it
    paired = paired_table(frame, ["base", "sft"], n_boot=200).set_index(["metric", "treatment"])
    assert paired.loc[("reference_loglik", "sft"), "difference"] == pytest.approx(-1.0)


def test_frames_without_the_field_summarize_as_before():
    frame = pd.DataFrame([judged("base", 1, f"p{p}", None) for p in range(3)]).drop(columns="reference_logprob")
    assert "reference_loglik" not in set(summarize(frame, n_boot=50)["metric"])
