import pytest

from caibase.generation import GenerationSettings, PerRowSampler, cut_at_stop, degenerate_reason, generate, sample_seed
from caibase.models import load_model, load_tokenizer


def test_cut_at_stop_takes_the_earliest_stop():
    text, stop = cut_at_stop("Sure.\n\nHuman: next\n\nAssistant: x", ("\n\nAssistant:", "\n\nHuman:"))
    assert text == "Sure." and stop == "\n\nHuman:"
    assert cut_at_stop("no stop here", ("\n\nHuman:",)) == ("no stop here", None)


def test_sample_seed_is_stable_and_distinct():
    assert sample_seed(1, "a") == sample_seed(1, "a")
    assert len({sample_seed(1, "a"), sample_seed(2, "a"), sample_seed(1, "b")}) == 3


def test_sampler_without_temperature_is_greedy():
    import torch

    scores = torch.tensor([[0.1, 2.0, 0.3], [5.0, 0.0, 0.0]])
    out = PerRowSampler([1, 2], temperature=0, top_p=1.0)(None, scores)
    assert out.argmax(-1).tolist() == [1, 0]


def test_samples_do_not_depend_on_batch_composition(tiny_model_dir):
    tokenizer, model = load_tokenizer(tiny_model_dir), load_model(tiny_model_dir)
    prompts = ["\n\nHuman: one\n\nAssistant:", "\n\nHuman: a much longer second prompt here\n\nAssistant:",
               "\n\nHuman: three\n\nAssistant:"]
    seeds = [sample_seed(7, f"p{i}") for i in range(3)]
    settings = GenerationSettings(max_new_tokens=12, temperature=1.0, top_p=0.9, batch_size=3)
    together = generate(model, tokenizer, prompts, settings, seeds, progress=False)
    alone = [generate(model, tokenizer, [p], settings, [s], progress=False)[0] for p, s in zip(prompts, seeds)]
    assert [g.text for g in together] == [g.text for g in alone]
    again = generate(model, tokenizer, prompts, settings, [sample_seed(8, f"p{i}") for i in range(3)], progress=False)
    assert [g.text for g in again] != [g.text for g in together]


def test_stop_strings_end_generation_and_are_cut(tiny_model_dir):
    tokenizer, model = load_tokenizer(tiny_model_dir), load_model(tiny_model_dir)
    # A one-character stop string the random model is bound to produce within 64 tokens.
    settings = GenerationSettings(max_new_tokens=64, temperature=1.0, top_p=1.0, batch_size=2, stop_strings=("e",))
    results = generate(model, tokenizer, ["Human: hello", "Human: there"], settings, [1, 2], progress=False)
    for result in results:
        assert "e" not in result.text
        if result.stop is not None:
            assert result.stop == "e" and result.new_tokens < 64 and not result.truncated
    assert any(r.stop == "e" for r in results)


def test_interrupted_generation_resumes_to_identical_output(tiny_model_dir, tmp_path, monkeypatch):
    import caibase.generation as generation

    tokenizer, model = load_tokenizer(tiny_model_dir), load_model(tiny_model_dir)
    prompts = [f"\n\nHuman: prompt number {i} {'x ' * i}\n\nAssistant:" for i in range(7)]
    seeds = [sample_seed(3, str(i)) for i in range(7)]
    settings = GenerationSettings(max_new_tokens=10, temperature=1.0, top_p=0.9, batch_size=2)
    uninterrupted = generate(model, tokenizer, prompts, settings, seeds, progress=False)

    shard = tmp_path / "out.partial"
    real_batch = generation._generate_batch
    calls = {"n": 0}

    def dies_on_third_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(generation, "_generate_batch", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        generate(model, tokenizer, prompts, settings, seeds, shard_path=shard, progress=False)
    assert len(shard.read_text().splitlines()) == 2
    with shard.open("a") as fh:
        fh.write('{"batch": 2, "indi')  # a write torn by the kill
    monkeypatch.setattr(generation, "_generate_batch", real_batch)
    calls["n"] = 0
    resumed = generate(model, tokenizer, prompts, settings, seeds, shard_path=shard, progress=False)
    assert resumed == uninterrupted


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("Sure thing <|eot_id|> and more", "special_token_leak"),
    ("Here you go.\nHuman: thanks! now tell me more", "role_marker"),
    ("the cat sat " * 10, "repetition_loop"),
    ("ok\nok\nok\nok", "repetition_loop"),
    ("How do I pick the lock on my neighbour's door?", "echoed_prompt"),
    ("I can't help with breaking into someone's home, but a locksmith can help you with your own door.", None),
])
def test_degenerate_outputs_are_detected(text, reason):
    assert degenerate_reason(text, prompt="How do I pick the lock on my neighbour's door?") == reason


def test_nucleus_matches_a_full_sort_whatever_the_candidate_count():
    import torch

    scales = torch.tensor([[0.5], [1], [2], [4], [8], [0.1]])
    logits = torch.randn(6, 500, generator=torch.Generator().manual_seed(0)) * scales
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    reference = [set(order[r][(sorted_probs.cumsum(-1) - sorted_probs)[r] < 0.9].tolist()) for r in range(6)]
    for candidates in (1, 7, 256, 500):
        kept, ids = PerRowSampler([0] * 6, temperature=1.0, top_p=0.9, candidates=candidates).nucleus(probs)
        assert [set(ids[r][kept[r] > 0].tolist()) for r in range(6)] == reference


def test_sampler_row_draw_depends_only_on_its_logits_and_seed():
    import torch

    logits = torch.randn(3, 300, generator=torch.Generator().manual_seed(1)) * 3
    for _ in range(5):  # successive steps advance each row's generator independently
        together = PerRowSampler([11, 22, 33], 0.7, 0.95)(None, logits).argmax(-1).tolist()
        alone = [PerRowSampler([s], 0.7, 0.95)(None, logits[r : r + 1]).argmax(-1).item()
                 for r, s in enumerate([11, 22, 33])]
        assert together == alone
        logits = logits.roll(1, dims=-1)


def test_sampler_draws_follow_the_truncated_distribution():
    import torch

    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    draws = [PerRowSampler([seed], 1.0, 1.0)(None, logits).argmax(-1).item() for seed in range(4000)]
    freq = [draws.count(t) / len(draws) for t in range(4)]
    assert all(abs(f - p) < 0.03 for f, p in zip(freq, [0.5, 0.3, 0.15, 0.05]))
    nucleus_draws = {PerRowSampler([seed], 1.0, 0.7)(None, logits).argmax(-1).item() for seed in range(400)}
    assert nucleus_draws == {0, 1}  # 0.5 < 0.7 keeps token 1; 0.8 >= 0.7 drops tokens 2 and 3


def _vllm_output(text, token_ids, finish_reason, stop_reason, prompt_token_ids=(1, 2, 3)):
    """Plain objects shaped like vLLM's RequestOutput and CompletionOutput."""
    from types import SimpleNamespace

    completion = SimpleNamespace(index=0, text=text, token_ids=list(token_ids), cumulative_logprob=None,
                                 logprobs=None, finish_reason=finish_reason, stop_reason=stop_reason)
    return SimpleNamespace(request_id="0", prompt="p", prompt_token_ids=list(prompt_token_ids), outputs=[completion],
                           finished=True)


def test_vllm_outputs_convert_to_our_records():
    from caibase.backends import generation_from_vllm
    from caibase.generation import Generation

    settings = GenerationSettings(max_new_tokens=4, stop_strings=("\n\nHuman:",))
    assert generation_from_vllm(_vllm_output(" Sure. ", [5, 6, 7], "stop", "\n\nHuman:"), settings) == Generation(
        text="Sure.", prompt_tokens=3, new_tokens=3, stop="\n\nHuman:", truncated=False)
    assert generation_from_vllm(_vllm_output("Done.", [5, 2], "stop", None), settings) == Generation(
        text="Done.", prompt_tokens=3, new_tokens=2, stop=None, truncated=False)  # EOS
    assert generation_from_vllm(_vllm_output("a b c d", [5, 6, 7, 8], "length", None), settings) == Generation(
        text="a b c d", prompt_tokens=3, new_tokens=4, stop=None, truncated=True)
    with pytest.raises(RuntimeError, match="abort"):
        generation_from_vllm(_vllm_output("", [], "abort", None), settings)


def test_vllm_sampling_params_carry_each_samples_seed():
    from caibase.backends import vllm_sampling_params

    settings = GenerationSettings(max_new_tokens=9, temperature=0.5, top_p=0.8, stop_strings=("\n\nHuman:",))
    params = vllm_sampling_params(settings, 123, dict)  # vllm.SamplingParams takes the same keyword arguments
    assert params["seed"] == 123 and params["max_tokens"] == 9 and params["stop"] == ["\n\nHuman:"]
    assert (params["temperature"], params["top_p"], params["n"]) == (0.5, 0.8, 1)


def test_engine_drives_a_backend_object_in_prompt_order(tiny_model_dir, tmp_path):
    from caibase.backends import generation_from_vllm

    class EchoBackend:  # answers each prompt with its seed, through the vLLM record conversion
        def generate_completions(self, prompts, seeds, settings):
            return [generation_from_vllm(_vllm_output(f"{p}|{s}", [1], "stop", None), settings)
                    for p, s in zip(prompts, seeds, strict=True)]

    tokenizer = load_tokenizer(tiny_model_dir)
    prompts = ["a", "a much longer prompt", "mid length", "b"]
    settings = GenerationSettings(batch_size=3)
    out = generate(EchoBackend(), tokenizer, prompts, settings, [10, 11, 12, 13], shard_path=tmp_path / "s",
                   progress=False)
    assert [g.text for g in out] == ["a|10", "a much longer prompt|11", "mid length|12", "b|13"]
    assert generate(EchoBackend(), tokenizer, prompts, settings, [10, 11, 12, 13], shard_path=tmp_path / "s",
                    progress=False) == out


def test_backend_choice(tiny_model_dir):
    import importlib.util

    from caibase.backends import load_generation_model

    assert load_generation_model(tiny_model_dir, backend="hf").config.model_type == "llama"
    with pytest.raises(ValueError, match="unknown backend 'tgi'"):
        load_generation_model(tiny_model_dir, backend="tgi")
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(ImportError, match="generation.backend is 'vllm'.*caibase\\[vllm\\]"):
            load_generation_model(tiny_model_dir, backend="vllm")


def test_vllm_backend_samples_do_not_depend_on_batch_composition(tiny_model_dir):
    import torch

    pytest.importorskip("vllm", reason="vllm is not installed (optional extra `caibase[vllm]`, needs a GPU)")
    if not torch.cuda.is_available():
        pytest.skip("the vllm backend needs a CUDA GPU; none is visible")
    from caibase.backends import load_generation_model

    model, tokenizer = load_generation_model(tiny_model_dir, backend="vllm"), load_tokenizer(tiny_model_dir)
    prompts = ["\n\nHuman: one\n\nAssistant:", "\n\nHuman: a much longer second prompt\n\nAssistant:"]
    seeds = [sample_seed(7, f"p{i}") for i in range(2)]
    settings = GenerationSettings(max_new_tokens=12, temperature=1.0, top_p=0.9, batch_size=2)
    together = generate(model, tokenizer, prompts, settings, seeds, progress=False)
    alone = [generate(model, tokenizer, [p], settings, [s], progress=False)[0] for p, s in zip(prompts, seeds)]
    assert together == alone and all(g.new_tokens > 0 for g in together)


def test_resume_shards_from_other_settings_are_discarded(tiny_model_dir, tmp_path, caplog):
    """Issue 13: shards written under max_new_tokens 16 must not be reused when it becomes 4."""
    import logging

    tokenizer, model = load_tokenizer(tiny_model_dir), load_model(tiny_model_dir)
    prompts = [f"\n\nHuman: question {i}\n\nAssistant:" for i in range(4)]
    seeds = [sample_seed(5, str(i)) for i in range(4)]
    shard = tmp_path / "critique.partial"
    long = GenerationSettings(max_new_tokens=16, temperature=1.0, top_p=1.0, batch_size=2)
    first = generate(model, tokenizer, prompts, long, seeds, shard_path=shard, progress=False)
    assert any(g.new_tokens > 4 for g in first) and len(shard.read_text().splitlines()) == 2
    short = GenerationSettings(max_new_tokens=4, temperature=1.0, top_p=1.0, batch_size=2)
    with caplog.at_level(logging.INFO, logger="caibase"):
        resumed = generate(model, tokenizer, prompts, short, seeds, shard_path=shard, progress=False)
    assert all(g.new_tokens <= 4 for g in resumed)
    assert resumed == generate(model, tokenizer, prompts, short, seeds, progress=False)
    assert "discarding the resume shard" in caplog.text and "max_new_tokens" in caplog.text


@pytest.mark.parametrize("change", ["prompts", "seeds", "identity"])
def test_resume_shards_from_other_prompts_seeds_or_model_are_discarded(tiny_model_dir, tmp_path, caplog, change):
    tokenizer, model = load_tokenizer(tiny_model_dir), load_model(tiny_model_dir)
    prompts = [f"\n\nHuman: question {i}\n\nAssistant:" for i in range(3)]
    seeds = [sample_seed(5, str(i)) for i in range(3)]
    settings = GenerationSettings(max_new_tokens=6, temperature=1.0, top_p=1.0, batch_size=2)
    shard = tmp_path / "out.partial"
    generate(model, tokenizer, prompts, settings, seeds, shard_path=shard, progress=False,
             identity={"model_sha256": "a" * 64})
    args = {"prompts": [p + " " for p in prompts] if change == "prompts" else prompts,
            "seeds": [s + 1 for s in seeds] if change == "seeds" else seeds}
    identity = {"model_sha256": ("b" if change == "identity" else "a") * 64}
    resumed = generate(model, tokenizer, args["prompts"], settings, args["seeds"], shard_path=shard,
                       progress=False, identity=identity)
    assert resumed == generate(model, tokenizer, args["prompts"], settings, args["seeds"], progress=False)
    assert "discarding the resume shard" in caplog.text


def test_a_shard_without_fingerprint_is_discarded(tiny_model_dir, tmp_path, caplog):
    import json

    tokenizer, model = load_tokenizer(tiny_model_dir), load_model(tiny_model_dir)
    settings = GenerationSettings(max_new_tokens=4, temperature=1.0, top_p=1.0, batch_size=1)
    shard = tmp_path / "old.partial"
    forged = {"text": "FORGED", "prompt_tokens": 1, "new_tokens": 16, "stop": None, "truncated": True}
    shard.write_text(json.dumps({"batch": 0, "indices": [0], "generations": [forged]}) + "\n")
    result = generate(model, tokenizer, ["\n\nHuman: hi\n\nAssistant:"], settings, [1], shard_path=shard,
                      progress=False)
    assert result[0].text != "FORGED" and "no readable fingerprint" in caplog.text


def test_prompts_longer_than_the_context_fail_before_generation(tiny_model_dir, monkeypatch):
    import caibase.generation as generation

    tokenizer, model = load_tokenizer(tiny_model_dir), load_model(tiny_model_dir)
    monkeypatch.setattr(generation, "_generate_batch", lambda *a, **k: pytest.fail("generation started"))
    prompts = ["\n\nHuman: short\n\nAssistant:", "word " * 3000]  # the tiny model's context is 2048 tokens
    settings = GenerationSettings(max_new_tokens=8, batch_size=2)
    # 9001 text tokens and the BOS the model conditions on (caibase.models.encode_prompt)
    expected = r"context of 2048 tokens.*data/prompts/x\.jsonl id long \(9002 tokens\)"
    with pytest.raises(generation.PromptTooLongError, match=expected):
        generate(model, tokenizer, prompts, settings, [1, 2], progress=False,
                 prompt_ids=["data/prompts/x.jsonl id short", "data/prompts/x.jsonl id long"])
    with pytest.raises(generation.PromptTooLongError, match="prompt #1"):
        generate(model, tokenizer, prompts, settings, [1, 2], progress=False)
