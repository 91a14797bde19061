import json

import pytest
import torch

from caibase.models import (
    ModelSourceError,
    find_embedded_gguf,
    load_model,
    load_model_info,
    load_tokenizer,
    prepare_model,
    weights_sha256,
)


def test_tiny_model_prepares_loads_and_generates(tiny_model_dir):
    info = load_model_info(tiny_model_dir)
    assert info["source"] == "tiny" and info["kind"] == "base" and len(info["sha256"]) == 64
    tokenizer = load_tokenizer(tiny_model_dir)
    model = load_model(tiny_model_dir)
    assert model.config.model_type == "llama"
    ids = tokenizer("Human: hi", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] == ids["input_ids"].shape[1] + 4


def test_tiny_model_is_deterministic(tmp_path, tiny_model_dir):
    prepare_model({"source": "tiny", "kind": "base"}, tmp_path)
    assert load_model_info(tmp_path)["sha256"] == load_model_info(tiny_model_dir)["sha256"]


def test_local_source_uses_the_directory_in_place(tmp_path, tiny_model_dir):
    weights = tiny_model_dir / "weights"
    info = prepare_model({"source": "local", "kind": "base", "path": str(weights)}, tmp_path)
    assert info["weights_dir"] == str(weights.resolve())
    assert info["sha256"] == weights_sha256(weights)
    assert load_model(tmp_path).config.model_type == "llama"


def test_local_source_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ModelSourceError, match="not a transformers checkpoint"):
        prepare_model({"source": "local", "kind": "base", "path": str(tmp_path)}, tmp_path / "out")


def test_hub_source_offline_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelSourceError, match="model.source: local"):
        prepare_model({"source": "hub", "kind": "base", "id": "meta-llama/Llama-3.2-3B",
                       "revision": "13afe5124825b4f3751f836b40dafda64c1ed062"}, tmp_path)
    assert not (tmp_path / "weights").exists(), "a failed download must leave nothing behind"


def test_hub_source_requires_a_pinned_revision(tmp_path):
    with pytest.raises(ModelSourceError, match="40-hex"):
        prepare_model({"source": "hub", "kind": "base", "id": "x/y", "revision": "main"}, tmp_path)


def test_unknown_source_is_rejected(tmp_path):
    with pytest.raises(ModelSourceError, match="unknown source"):
        prepare_model({"source": "ftp", "kind": "base"}, tmp_path)


def test_embedded_model_converts_from_the_real_wheel(tmp_path):
    """The real conversion: GGUF inside the PyPI wheel -> safetensors, loadable without the GGUF file."""
    gguf = find_embedded_gguf()
    assert gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    info = prepare_model({"source": "embedded", "kind": "instruct"}, tmp_path)
    assert info["kind"] == "instruct" and info["gguf_file"] == gguf.name
    files = sorted(p.name for p in (tmp_path / "weights").iterdir())
    assert "model.safetensors" in files and "tokenizer.json" in files
    assert not any(name.endswith((".bin", ".pt", ".gguf")) for name in files)
    model = load_model(tmp_path)
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    tokenizer = load_tokenizer(tmp_path)
    ids = tokenizer("\n\nHuman: What is the capital of France?\n\nAssistant:", return_tensors="pt")
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    with torch.inference_mode():
        assert torch.allclose(model(**ids).logits, reference(**ids).logits, atol=1e-4)
    assert json.loads((tmp_path / "model_info.json").read_text())["sha256"] == info["sha256"]
