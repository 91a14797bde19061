from caibase.generation import GenerationSettings, PerRowSampler, cut_at_stop, generate, sample_seed
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
