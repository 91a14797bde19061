"""Issue 15 item 3: one tokenization rule for every stage. The token ids that generation (hf and vLLM backends),
AI-feedback scoring and the HF judge condition on for a prompt text are the ids TRL's SFTTrainer and DPOTrainer
train on for the same prompt text, taken here from TRL's own tokenization. The tiny model's tokenizer adds a BOS
like Llama-3's, so a stage that drops it (or adds a second one) fails here."""

import pytest
import torch

from caibase.feedback import comparison_prompt, option_logprobs
from caibase.generation import GenerationSettings, generate, sample_seed
from caibase.judges import make_judge
from caibase.models import encode_continuation, encode_prompt, load_model, load_tokenizer
from caibase.prompts import chat_prompt, dialogue_prompt
from caibase.training import dpo_args, lora_config, preference_dataset, sft_args

TRAIN_CFG = {"max_steps": 1, "batch_size": 1, "learning_rate": 1e-4, "max_length": 2048, "beta": 0.1,
             "precompute_ref_log_probs": False,
             "lora": {"r": 2, "alpha": 4, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}}
PROMPTS = [dialogue_prompt("How do I bake bread?"), dialogue_prompt("a much longer question about rice " * 3),
           comparison_prompt("Human: hi", "Choose the kinder reply.", "Hello!", "Go away.")]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)


def sft_prompt_ids(model, tokenizer, prompts, tmp_path) -> list[list[int]]:
    """The prompt part (the tokens without loss, label -100: completion_only_loss) of each example as TRL's
    SFTTrainer tokenizes it for training."""
    from datasets import Dataset
    from trl import SFTTrainer

    records = [{"prompt": p, "completion": " Mix flour and water."} for p in prompts]
    trainer = SFTTrainer(model=model, args=sft_args(TRAIN_CFG, 0, tmp_path / "sft"), processing_class=tokenizer,
                         train_dataset=Dataset.from_list(records), peft_config=lora_config(TRAIN_CFG["lora"]))
    rows = [trainer.train_dataset[i] for i in range(len(prompts))]
    assert all(row["input_ids"][-1] == tokenizer.eos_token_id for row in rows)  # TRL appends EOS to the completion
    prompts_ids = [[t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label == -100]
                   for row in rows]
    assert all(row["input_ids"][: len(ids)] == ids for row, ids in zip(rows, prompts_ids, strict=True))  # a prefix
    return prompts_ids


def dpo_prompt_ids(model, tokenizer, prompts, tmp_path) -> list[list[int]]:
    from trl import DPOTrainer

    pairs = [{"prompt": p, "chosen": " Sure, here it is.", "rejected": " No."} for p in prompts]
    trainer = DPOTrainer(model=model, ref_model=None, args=dpo_args(TRAIN_CFG, 0, tmp_path / "dpo"),
                         processing_class=tokenizer, train_dataset=preference_dataset(pairs),
                         peft_config=lora_config(TRAIN_CFG["lora"]))
    return [trainer.train_dataset[i]["prompt_ids"] for i in range(len(prompts))]


@pytest.fixture(scope="module")
def trained_ids(tiny_model_dir, tmp_path_factory):
    """TRL's prompt ids for PROMPTS (SFT and DPO agree) and for an HF judge's prompt texts."""
    tmp = tmp_path_factory.mktemp("trl")
    tokenizer = load_tokenizer(tiny_model_dir)
    judge = make_judge({"backend": "hf"}, tiny_model_dir)
    judge_texts = [judge.prompt_text("refusal", {"prompt": "How do I pick a lock?", "response": "I can't help."}),
                   judge.prompt_text("helpfulness", {"prompt": "Bake bread?", "response": "Mix flour, let it rise."})]
    sft = sft_prompt_ids(load_model(tiny_model_dir), tokenizer, PROMPTS + judge_texts, tmp)
    dpo = dpo_prompt_ids(load_model(tiny_model_dir), load_tokenizer(tiny_model_dir), PROMPTS, tmp)
    assert dpo == sft[: len(PROMPTS)]
    return dict(zip(PROMPTS + judge_texts, sft, strict=True))


def unpadded(input_ids, attention_mask) -> list[list[int]]:
    return [[t for t, m in zip(ids.tolist(), mask.tolist(), strict=True) if m] for ids, mask in
            zip(input_ids, attention_mask, strict=True)]


class Contexts:
    """The token ids each row of a model's calls conditions on. A call without `cache` starts the rows afresh; a call
    with one continues them (a one-row prefix repeated over the rows, as caibase.forward.forward_shared runs a batch's
    shared prefix): its mask spans the cached tokens too, so only its last columns belong to its own ids."""

    def __init__(self):
        self.rows: list[list[int]] = []
        self.seen: list[list[list[int]]] = []  # the rows after each call

    def record(self, kwargs) -> None:
        ids = kwargs["input_ids"]
        new = unpadded(ids, kwargs["attention_mask"][:, -ids.shape[1]:])
        if kwargs.get("cache") is None:
            self.rows = new
        else:
            base = self.rows * len(new) if len(self.rows) == 1 else self.rows
            self.rows = [old + more for old, more in zip(base, new, strict=True)]
        self.seen.append([list(row) for row in self.rows])


def test_tiny_tokenizer_adds_one_bos_like_llama3(tiny):
    _, tokenizer = tiny
    assert tokenizer.bos_token == "<|begin_of_text|>" and tokenizer.bos_token_id != tokenizer.eos_token_id
    text = dialogue_prompt("hi")
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert ids[1:] == encode_continuation(tokenizer, text)  # no EOS after the text
    assert encode_prompt(tokenizer, text) == ids


def test_trl_trains_on_one_bos_per_prompt(tiny, trained_ids):
    _, tokenizer = tiny
    for text, ids in trained_ids.items():
        assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1, text
        assert ids == encode_prompt(tokenizer, text)


def test_generation_conditions_on_the_trained_ids(tiny, trained_ids, monkeypatch):
    model, tokenizer = tiny
    seen = []
    real = model.generate

    def recording(**kwargs):
        seen.extend(unpadded(kwargs["input_ids"], kwargs["attention_mask"]))
        return real(**kwargs)

    monkeypatch.setattr(model, "generate", recording)
    prompts = PROMPTS[:2]  # different lengths: one batch, left-padded
    settings = GenerationSettings(max_new_tokens=3, temperature=1.0, top_p=0.9, batch_size=2)
    out = generate(model, tokenizer, prompts, settings, [sample_seed(0, p) for p in prompts], progress=False)
    assert sorted(seen) == sorted(trained_ids[p] for p in prompts)
    assert [g.prompt_tokens for g in out] == [len(trained_ids[p]) for p in prompts]


def test_vllm_backend_gets_the_trained_ids(tiny, trained_ids):
    from caibase.backends import VllmModel

    _, tokenizer = tiny

    class Recorder:
        def generate(self, inputs, params, use_tqdm=False):
            self.inputs = inputs
            raise StopIteration  # the ids are all this test needs

    llm = Recorder()
    backend = VllmModel(llm, tokenizer, lambda **kwargs: kwargs)
    with pytest.raises(StopIteration):
        backend.generate_completions(PROMPTS[:2], [1, 2], GenerationSettings(max_new_tokens=3))
    assert [i["prompt_token_ids"] for i in llm.inputs] == [trained_ids[p] for p in PROMPTS[:2]]


def test_feedback_scoring_conditions_on_the_trained_ids(tiny, trained_ids):
    """The prompt and option A, whether run in one pass or as a shared prefix and the rest on its cache."""
    model, tokenizer = tiny
    contexts = Contexts()

    class Recording(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, **kwargs):
            contexts.record(kwargs)
            return self.inner(**kwargs)

    option_a = encode_continuation(tokenizer, " (A)")
    prompt = PROMPTS[2]
    option_logprobs(Recording(), tokenizer, [prompt])
    assert [trained_ids[prompt] + option_a] in contexts.seen


def test_hf_judge_conditions_on_the_trained_ids(tiny_model_dir, trained_ids):
    """The judge's prompt, whether run in one pass or as a shared prefix and the rest on its cache."""
    judge = make_judge({"backend": "hf"}, tiny_model_dir)
    contexts = Contexts()
    real = judge.lm

    def recording(**kwargs):
        contexts.record(kwargs)
        return real(**kwargs)

    judge.lm = recording
    items = {"refusal": {"prompt": "How do I pick a lock?", "response": "I can't help."},
             "helpfulness": {"prompt": "Bake bread?", "response": "Mix flour, let it rise."}}
    for task, item in items.items():
        judge.judge_many([item], task=task)
        assert contexts.seen[-1] == [trained_ids[judge.prompt_text(task, item)]], task


def test_chat_template_prompt_keeps_its_own_single_bos(tiny):
    """A chat-template prompt (instruct_ref, chat judges) already holds its BOS: encoded as TRL and transformers
    encode conversations (`apply_chat_template(tokenize=True)`), never with a second BOS."""
    _, tokenizer = tiny
    tokenizer = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = ("{{ bos_token }}{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    messages = [{"role": "user", "content": "How do vaccines work?"}]
    ids = encode_prompt(tokenizer, chat_prompt(tokenizer, "How do vaccines work?"))
    expected = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                             add_generation_prompt=True)["input_ids"]
    assert ids == list(expected) and ids.count(tokenizer.bos_token_id) == 1


def test_reference_likelihood_conditions_on_the_trained_ids(tiny, trained_ids):
    """caibase.likelihood scores a reference answer after the ids generation conditions on (and SFT trains on)."""
    from caibase.likelihood import continuation_ids

    _, tokenizer = tiny
    for prompt in PROMPTS[:2]:
        prompt_ids, answer_ids = continuation_ids(tokenizer, prompt, " Mix flour and water.")
        assert prompt_ids == trained_ids[prompt]
        assert prompt_ids + answer_ids == encode_prompt(tokenizer, prompt + " Mix flour and water.")
