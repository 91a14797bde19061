"""Base-model enforcement (issue 15, item 8): a model declared `model.kind: base` that looks instruction-tuned (its
name, model card, tokenizer or config) is refused before any training, with an error naming the config key and what
was detected; `model.kind: instruct` declares it a stand-in and lets it through. Tiny models built in code."""

import json
import logging
import shutil

import pytest

from caibase.base_model import InstructModelError, check_config_model, instruct_signals, name_signals
from caibase.config import ConfigError, check_config
from caibase.models import check_training_model, load_model_info, prepare_model

from conftest import REPO, load_config


@pytest.fixture
def checkpoint(tmp_path, tiny_model_dir):
    """A copy of the tiny model's checkpoint, to dress up as an instruct model."""
    path = tmp_path / "checkpoint"
    shutil.copytree(tiny_model_dir / "weights", path)
    return path


def edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def prepare_local(checkpoint, out, kind, model_id=None):
    return prepare_model({"source": "local", "kind": kind, "path": str(checkpoint),
                          **({"id": model_id} if model_id else {})}, out)


def test_names_of_instruct_and_chat_models_are_strong_signals_and_base_names_are_none():
    for name in ("meta-llama/Llama-3.2-3B-Instruct", "Qwen/Qwen2.5-7B-Instruct", "google/gemma-2-2b-it",
                 "meta-llama/Llama-2-7b-chat-hf", "HuggingFaceTB/SmolLM2-135M-Instruct", "tiiuae/falcon-7b-instruct"):
        assert [s["strong"] for s in name_signals(name)] == [True], name
    for name in ("meta-llama/Llama-3.2-3B", "Qwen/Qwen2.5-7B", "mistralai/Mistral-7B-v0.1", "google/gemma-2-2b",
                 "HuggingFaceTB/SmolLM2-135M", "EleutherAI/pythia-1b", "allenai/OLMo-2-1124-7B",
                 "caibase/tiny-random-llama", "weights", None):
        assert name_signals(name) == [], name


def test_a_base_checkpoint_has_no_signal_and_prepares_as_base(checkpoint, tmp_path):
    assert instruct_signals(checkpoint, "caibase/tiny-random-llama") == []
    info = prepare_local(checkpoint, tmp_path / "model", "base")
    assert info["kind"] == "base" and info["instruct_signals"] == []
    assert check_training_model(tmp_path / "model")["kind"] == "base"


@pytest.mark.parametrize("dress, model_id, detected", [
    (lambda c: None, "HuggingFaceTB/SmolLM2-135M-Instruct", r"model id 'HuggingFaceTB/SmolLM2-135M-Instruct' names"),
    (lambda c: (c / "README.md").write_text("---\nlicense: apache-2.0\ntags: [llama, chat, trl]\n---\n# A model\n"),
     None, r"model card \(README\.md\) is tagged \['chat'\]"),
    (lambda c: (c / "README.md").write_text("---\nbase_model: meta-llama/Llama-3.2-3B-Instruct\n---\n"), None,
     r"base_model 'meta-llama/Llama-3.2-3B-Instruct' is an instruct/chat model"),
    (lambda c: edit_json(c / "tokenizer_config.json", eos_token="<|im_end|>"), None,
     r"end-of-sequence token is the chat turn terminator '<\|im_end\|>'"),
    (lambda c: edit_json(c / "config.json", _name_or_path="/models/google/gemma-2-2b-it"), None,
     r"config\.json _name_or_path 'google/gemma-2-2b-it' names"),
])
def test_an_instruct_model_declared_base_is_refused_and_allowed_as_a_stand_in(checkpoint, tmp_path, dress, model_id,
                                                                                detected):
    dress(checkpoint)
    with pytest.raises(InstructModelError, match=r"config key model\.kind is 'base'.*" + detected +
                                                 r".*declare model\.kind: instruct"):
        prepare_local(checkpoint, tmp_path / "refused", "base", model_id)
    assert not (tmp_path / "refused" / "model_info.json").exists()
    info = prepare_local(checkpoint, tmp_path / "stand-in", "instruct", model_id)  # declared a stand-in
    assert info["kind"] == "instruct" and info["instruct_signals"]
    assert load_model_info(tmp_path / "stand-in")["kind"] == "instruct"  # what every record's model_kind stamps
    assert check_training_model(tmp_path / "stand-in")["kind"] == "instruct"


def test_a_chat_template_alone_is_recorded_and_logged_not_refused(checkpoint, tmp_path, caplog):
    """Many base models ship a chat template (Qwen2.5's base models do), so it alone is a weak signal."""
    edit_json(checkpoint / "tokenizer_config.json", chat_template="{% for m in messages %}{{ m.content }}{% endfor %}")
    with caplog.at_level(logging.WARNING, logger="caibase.models"):
        info = prepare_local(checkpoint, tmp_path / "model", "base")
    assert info["kind"] == "base" and any("chat template" in s for s in info["instruct_signals"])
    assert "recorded, not refused" in caplog.text
    (checkpoint / "tokenizer_config.json").write_text(
        json.dumps({k: v for k, v in json.loads((checkpoint / "tokenizer_config.json").read_text()).items()
                    if k != "chat_template"}))
    (checkpoint / "chat_template.jinja").write_text("{{ messages }}")
    signals = instruct_signals(checkpoint)
    assert [(s["strong"], "chat_template.jinja" in s["detail"]) for s in signals] == [(False, True)]


def test_training_refuses_a_prepared_base_model_that_turns_out_instruct(checkpoint, tmp_path):
    """The training stages check again before loading the model: a model_info.json from before the check, or a
    local checkpoint changed since, is refused at the start of SFT (and DPO), before any compute."""
    from caibase.training import dpo_stage, sft_stage

    prepare_local(checkpoint, tmp_path / "model", "base")
    (checkpoint / "README.md").write_text("---\ntags: [instruct]\n---\n")
    with pytest.raises(InstructModelError, match=r"model\.kind is 'base'.*tagged \['instruct'\]"):
        check_training_model(tmp_path / "model")
    config = load_config("smoke.yaml")
    job = {"stage": "sft", "rule": "sft", "seed": 1, "threads": 1, "log": None, "wildcards": {"seed": "1"},
           "input": {"model": str(tmp_path / "model" / "model_info.json"),
                     "demonstrations": str(REPO / config["prompts"]["helpful_sft"])},
           "output": {"adapter": str(tmp_path / "sft" / "adapter"), "history": str(tmp_path / "sft" / "history.csv")},
           "params": {"trainer": config["sft"]}, "config": config}
    for stage in (sft_stage, dpo_stage):
        with pytest.raises(InstructModelError, match="model.kind"):
            stage({**job, "input": {**job["input"], "pairs": str(tmp_path / "none.jsonl")}}, logging.getLogger())
    assert not (tmp_path / "sft").exists()


def test_the_config_check_refuses_an_instruct_name_declared_base_before_any_job(repo):
    config = load_config("smoke.yaml")
    config["model"] = {"source": "embedded", "kind": "base"}
    with pytest.raises(ConfigError, match=r"config key model\.kind is 'base', but model\.source 'embedded' is "
                                          r"SmolLM2-135M-Instruct"):
        check_config(config, repo)
    config["model"] = {"source": "hub", "kind": "base", "id": "meta-llama/Llama-3.2-3B-Instruct",
                       "revision": "0" * 40}
    with pytest.raises(ConfigError, match=r"model\.id 'meta-llama/Llama-3\.2-3B-Instruct' names"):
        check_config(config, repo)
    config["model"]["kind"] = "instruct"  # a declared stand-in
    check_config(config, repo)
    check_config_model({"source": "hub", "kind": "base", "id": "meta-llama/Llama-3.2-3B"})
    for name in ("config.yaml", "smoke.yaml", "paper.yaml", "seed.yaml", "scale.yaml"):  # the shipped configs pass
        model = load_config(name)["model"]
        check_config_model(model)
        assert model["kind"] == ("instruct" if model["source"] == "embedded" else "base"), name
