import json
import math

import pytest
import torch

from caibase.constitution import load_constitution
from caibase.feedback import (
    ai_feedback_labels,
    comparison_prompt,
    option_logprobs,
    prob_first,
    score_hhh,
    soft_label_pairs,
    swap_options,
)
from caibase.metrics import validation_summary, wilson_interval
from caibase.models import encode_continuation, encode_prompt, load_model, load_tokenizer
from caibase.prompts import dialogue_prompt


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)


def single_logprob(model, tokenizer, prompt, option):
    """log P(option | prompt) from one unpadded forward pass: the reference for the batched scorer."""
    p = encode_prompt(tokenizer, prompt)
    o = encode_continuation(tokenizer, option)
    ids = torch.tensor([p + o])
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(input_ids=ids).logits.float(), -1)[0]
    return sum(logprobs[len(p) - 1 + k, t].item() for k, t in enumerate(o))


def test_batched_option_logprobs_match_unpadded_passes(tiny):
    model, tokenizer = tiny
    prompts = [comparison_prompt("Human: hi", "Choose the kinder reply.", "Hello!", "Go away."),
               comparison_prompt("Human: a longer question about cooking rice", "Choose the more helpful reply.",
                                 "Rinse it, then simmer with twice the water.", "No.")]
    batched = option_logprobs(model, tokenizer, prompts, batch_size=4)
    for prompt, (lp_a, lp_b) in zip(prompts, batched):
        assert lp_a == pytest.approx(single_logprob(model, tokenizer, prompt, " (A)"), abs=1e-4)
        assert lp_b == pytest.approx(single_logprob(model, tokenizer, prompt, " (B)"), abs=1e-4)


def test_shared_prefix_option_logprobs_equal_full_prompts(tiny, repo):
    """The few-shot prefix run once per batch gives each prompt's option log-probs as running it in full, also
    for a prompt scored alone."""
    from caibase.feedback import fewshot_prefix
    from caibase.forward import MIN_SHARED, common_prefix

    model, tokenizer = tiny
    prefix = fewshot_prefix(load_constitution("constitution", repo), 1)
    prompts = [prefix + comparison_prompt(f"Human: question {i}" + " more" * i, "Choose the kinder reply.",
                                          "Hello!" * (i + 1), "Go away.") for i in range(5)]
    prompts += [swap_options(p) for p in prompts]
    assert common_prefix([encode_prompt(tokenizer, p) for p in prompts]) >= MIN_SHARED
    shared = option_logprobs(model, tokenizer, prompts, batch_size=4)
    full = option_logprobs(model, tokenizer, prompts, batch_size=4, shared_prefix=False)
    for (a, b), (a_full, b_full) in zip(shared, full, strict=True):
        assert a == pytest.approx(a_full, abs=1e-4) and b == pytest.approx(b_full, abs=1e-4)
    alone = option_logprobs(model, tokenizer, prompts[3:4], batch_size=4)[0]
    assert alone == pytest.approx(shared[3], abs=1e-4)


def test_soft_labels_sum_to_one_and_average_both_orders(tiny, repo):
    model, tokenizer = tiny
    constitution = load_constitution("constitution", repo)
    items = [{"id": f"p{i}", "prompt": f"question {i}", "response_1": f"answer one {i}", "response_2": "nope"}
             for i in range(3)]
    labels = ai_feedback_labels(model, tokenizer, items, constitution, seed=1, fewshot_examples=1)
    swapped = ai_feedback_labels(model, tokenizer, [{**it, "response_1": it["response_2"],
                                                     "response_2": it["response_1"]} for it in items],
                                 constitution, seed=1, fewshot_examples=1)
    for label, other in zip(labels, swapped):
        assert label["p_first"] == pytest.approx((label["p_first_order_ab"] + label["p_first_order_ba"]) / 2)
        assert label["p_first"] + other["p_first"] == pytest.approx(1.0, abs=1e-9)  # same principle, both orders
        assert label["position_consistent"] == ((label["p_first_order_ab"] > 0.5) == (label["p_first_order_ba"] > 0.5))
    pairs = soft_label_pairs(labels, dialogue_prompt)
    for pair, label in zip(pairs, labels):
        assert pair["p_chosen"] == pytest.approx(max(label["p_first"], 1 - label["p_first"]))
        assert pair["prompt"] == dialogue_prompt(label["prompt"])


def test_validation_reproduces_a_hand_computed_accuracy(tiny):
    model, tokenizer = tiny
    rows = []
    for i, (good, bad) in enumerate([("Sure, here is a safe way.", "Do something dangerous."),
                                     ("I can help with that.", "No."), ("Please see a doctor.", "Ignore it."),
                                     ("Be kind to them.", "Insult them back.")]):
        a, b = (good, bad) if i % 2 == 0 else (bad, good)
        rows.append({"prompt": comparison_prompt(f"Human: question {i}", "Choose the better reply.", a, b),
                     "corrects": [" (A)" if i % 2 == 0 else " (B)"]})
    by_hand = []
    for row in rows:
        def p_correct(prompt, correct_is_a):
            p_a = prob_first(single_logprob(model, tokenizer, prompt, " (A)"),
                             single_logprob(model, tokenizer, prompt, " (B)"))
            return p_a if correct_is_a else 1 - p_a
        correct_is_a = row["corrects"][0] == " (A)"
        by_hand.append((p_correct(row["prompt"], correct_is_a) + p_correct(swap_options(row["prompt"]),
                                                                          not correct_is_a)) / 2)
    summary = validation_summary(score_hhh(model, tokenizer, rows, batch_size=3))
    expected = sum(p > 0.5 for p in by_hand)
    assert summary["correct"] == expected and summary["accuracy"] == expected / 4
    assert summary["accuracy_ci95_wilson"] == pytest.approx(list(wilson_interval(expected, 4)))


def test_wilson_interval_known_value():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)


def test_swap_options_exchanges_the_two_options():
    prompt = comparison_prompt("Human: hi", "Choose.", "first", "second")
    assert swap_options(prompt) == comparison_prompt("Human: hi", "Choose.", "second", "first")
    with pytest.raises(ValueError):
        swap_options("no options here")


def test_dpo_reference_stays_fixed(tiny_model_dir, tmp_path):
    """The reference (adapter disabled) gives the same log-probs after training; the policy moves."""
    from caibase.training import train_dpo

    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_model(tiny_model_dir)
    pairs = [{"prompt": dialogue_prompt(f"question {i}"), "chosen": " I can't help with that.",
              "rejected": f" Sure, step {i}."} for i in range(8)]
    batch = tokenizer([p["prompt"] + p["chosen"] for p in pairs[:2]], return_tensors="pt", padding=True)
    with torch.inference_mode():
        before = model(**batch).logits.clone()
    cfg = {"max_steps": 3, "learning_rate": 5e-2, "batch_size": 4, "max_length": 64, "beta": 0.1,
           "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}}
    trainer = train_dpo(model, tokenizer, pairs, cfg, 0, tmp_path / "adapter", tmp_path / "history.csv",
                        tmp_path / "work")
    policy = trainer.model.eval()
    with torch.inference_mode():
        with policy.disable_adapter():
            reference = policy(**batch).logits
        moved = policy(**batch).logits
    assert torch.allclose(reference, before, atol=1e-6)
    assert not torch.allclose(moved, before, atol=1e-4)
    assert math.isfinite(trainer.state.log_history[-1]["train_loss"])


def test_hhh_dev100_is_rebuilt_from_the_full_file(data_mirror, tmp_path, monkeypatch):
    """Without the mirror's sample, the same 100 rows come from the full upstream file, selected by hash."""
    import dataclasses

    from caibase import sources
    from caibase.artifacts import sha256_file

    sample = (data_mirror / "cai-paper/evals/438HHHEvaluations-dev100.jsonl").read_text().splitlines()
    other = [line.replace("The answer is:", "The answer is: ") for line in sample[:7]]  # rows not in the sample
    full = tmp_path / "cai-paper" / "evals" / "438HHHEvaluations.jsonl"
    full.parent.mkdir(parents=True)
    full.write_text("\n".join(other[:3] + sample[::-1] + other[3:]) + "\n")
    name = "cai-paper/evals/438HHHEvaluations.jsonl"
    monkeypatch.setitem(sources.SOURCES, name, dataclasses.replace(sources.SOURCES[name], sha256=sha256_file(full)))
    monkeypatch.setenv("CAI_DATA_MIRROR", str(tmp_path))
    rebuilt = sources.hhh_rows("dev100")
    assert [row["prompt"] for row in rebuilt] == [json.loads(line)["prompt"] for line in sample]
    assert len(sources.hhh_rows("full")) == 107


def test_chain_of_thought_labels_are_clamped_and_average_both_orders(tiny, repo):
    """Reasoning is sampled, the options are scored after it, each order's P(first) is clamped to the band, and
    the label is the mean of the two clamped orders."""
    from caibase.feedback import ChainOfThought, answer_after_reasoning, fewshot_prefix
    from caibase.generation import GenerationSettings

    model, tokenizer = tiny
    constitution = load_constitution("constitution", repo)
    items = [{"id": f"p{i}", "prompt": f"question {i}", "response_1": f"answer one {i}", "response_2": "nope"}
             for i in range(3)]
    band = (0.499, 0.501)  # narrower than the tiny model's spread, so the clamp acts
    cot = ChainOfThought(GenerationSettings(max_new_tokens=6, temperature=0.7, batch_size=4), band)
    labels = ai_feedback_labels(model, tokenizer, items, constitution, seed=1, fewshot_examples=1,
                                chain_of_thought=cot)
    raw = [label[f"p_first_order_{order}_raw"] for label in labels for order in ("ab", "ba")]
    assert any(not band[0] <= p <= band[1] for p in raw)
    for label in labels:
        assert label["chain_of_thought"] is True
        assert label["reasoning_order_ab"] and label["reasoning_order_ba"]
        for order in ("ab", "ba"):
            assert label[f"p_first_order_{order}"] == min(max(label[f"p_first_order_{order}_raw"], band[0]), band[1])
        assert band[0] <= label["p_first"] <= band[1]
        assert label["p_first"] == pytest.approx((label["p_first_order_ab"] + label["p_first_order_ba"]) / 2)
    # the raw probability of order AB is read after that order's reasoning
    first = labels[0]
    principle = next(p for p in constitution.comparison_principles if p.id == first["principle_id"])
    prompt = fewshot_prefix(constitution, 1) + comparison_prompt(
        "Human: question 0", principle.text, first["response_1"], first["response_2"])
    scored = answer_after_reasoning(prompt, first["reasoning_order_ab"])
    assert first["p_first_order_ab_raw"] == pytest.approx(prob_first(
        single_logprob(model, tokenizer, scored, " (A)"), single_logprob(model, tokenizer, scored, " (B)")), abs=1e-4)
    again = ai_feedback_labels(model, tokenizer, items, constitution, seed=1, fewshot_examples=1,
                               chain_of_thought=cot)
    assert [x["reasoning_order_ab"] for x in again] == [x["reasoning_order_ab"] for x in labels]  # seeded
