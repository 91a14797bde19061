"""Base-model enforcement: Constitutional AI starts from a *base* model, so a model that looks instruction-tuned is
refused in the training path when the config declares `model.kind: base`.

`instruct_signals` reads what a checkpoint says about itself, without loading weights or importing torch:

- its name: the model id (hub id, `local` id or folder name) or `config.json`'s `_name_or_path` naming an
  instruct or chat model (`Instruct`, `chat`, `-it`);
- its model card (`README.md` front matter): `tags` naming instruction or preference tuning (instruct, chat, sft,
  dpo, rlhf), or a `base_model` that is itself an instruct or chat model;
- its tokenizer: an end-of-sequence token that is a chat turn terminator (`<|im_end|>`, `<|eot_id|>`,
  `<end_of_turn>`, `<|end|>`: instruct models stop at the end of their turn, base models at the end of the text);
  and a chat template (`chat_template` in `tokenizer_config.json`, or `chat_template.jinja`/`.json`).

Each signal is strong or weak. A chat template alone is weak: many base models ship one (Qwen2.5's base models do),
so it is recorded (`model_info.json`: `instruct_signals`) and logged, not refused. Any strong signal with
`model.kind: base` is an error that names the config key and what was detected; `model.kind: instruct` declares
the model an instruct stand-in, which every record (`model_kind`), table and the paper's first page then say (as
for the embedded SmolLM2-135M-Instruct default). `check_config` applies the name check to the config itself (before
any job), `prepare_model` the full check before writing `model_info.json`, and the training stages (SFT, SL-CAI,
DPO) again before loading the model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

# A name part that says instruct or chat: "SmolLM2-135M-Instruct", "Llama-2-7b-chat-hf", "gemma-2-2b-it".
INSTRUCT_NAME = re.compile(r"instruct|chat|(?:^|[-_/. ])it(?:$|[-_/. ])", re.IGNORECASE)
# Model-card tags that say instruction or preference tuning.
INSTRUCT_TAG = re.compile(r"instruct|chat|(?:^|[-_ ])(?:sft|dpo|rlhf|orpo|kto)(?:$|[-_ ])", re.IGNORECASE)
TURN_END_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")
STAND_IN_FIX = ("CAI starts from a base model: configure a base model, or, to run this one as an instruct stand-in, "
                "declare model.kind: instruct (every record, table and the paper then mark the run as a stand-in)")


class InstructModelError(ValueError):
    """A model declared `model.kind: base` looks instruction-tuned."""


def _signal(source: str, detail: str, strong: bool = True) -> dict:
    return {"source": source, "detail": detail, "strong": strong}


def name_signals(name: str | None, source: str = "model id") -> list[dict]:
    """A strong signal when a model name names an instruct or chat model."""
    if not name:
        return []
    match = INSTRUCT_NAME.search(name)
    return [_signal(source, f"{source} {name!r} names an instruct/chat model ({match.group().strip('-_/. ')!r})")] \
        if match else []


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _token(value) -> str | None:
    """A special token as tokenizer_config.json stores it: a string or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def model_card(weights_dir: Path) -> dict:
    """The YAML front matter of the checkpoint's README.md (its model card metadata), or {}."""
    path = weights_dir / "README.md"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    match = re.match(r"\A---\s*\n(.*?)\n---\s*(\n|\Z)", text, flags=re.S)
    if not match:
        return {}
    try:
        card = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        return {}
    return card if isinstance(card, dict) else {}


def _as_list(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value] if isinstance(value, list) else []


def instruct_signals(weights_dir: str | Path, model_id: str | None = None) -> list[dict]:
    """What marks the checkpoint in `weights_dir` (named `model_id`) as instruction-tuned: a list of
    {source, detail, strong}, empty for a model that looks like a base model."""
    weights_dir = Path(weights_dir)
    signals = name_signals(model_id)
    config = _json(weights_dir / "config.json")
    for key in ("_name_or_path", "name_or_path"):  # a hub id, or the path it was loaded from: its last two parts
        name = "/".join(config[key].rstrip("/").split("/")[-2:]) if isinstance(config.get(key), str) else ""
        if name and name != model_id:
            signals += name_signals(name, f"config.json {key}")
    card = model_card(weights_dir)
    tags = [tag for tag in _as_list(card.get("tags")) if INSTRUCT_TAG.search(tag)]
    if tags:
        signals.append(_signal("model card", f"the model card (README.md) is tagged {tags}"))
    for parent in _as_list(card.get("base_model")):
        if INSTRUCT_NAME.search(parent):
            signals.append(_signal("model card", f"the model card's base_model {parent!r} is an instruct/chat model"))
    tokenizer = _json(weights_dir / "tokenizer_config.json")
    eos = _token(tokenizer.get("eos_token"))
    if eos in TURN_END_TOKENS:
        signals.append(_signal("tokenizer",
                               f"the tokenizer's end-of-sequence token is the chat turn terminator {eos!r}"))
    template = [name for name in ("chat_template.jinja", "chat_template.json") if (weights_dir / name).is_file()]
    if tokenizer.get("chat_template") or template:
        where = template[0] if template else "tokenizer_config.json"
        signals.append(_signal("tokenizer", f"the tokenizer ships a chat template ({where}; many base models do too)",
                               strong=False))
    return signals


def check_base_model(kind: str, signals: list[dict], where: str = "") -> None:
    """Refuse a model declared `model.kind: base` that any strong signal marks as instruction-tuned."""
    strong = [s["detail"] for s in signals if s["strong"]]
    if kind == "base" and strong:
        raise InstructModelError(f"config key model.kind is 'base', but the model{f' ({where})' if where else ''} "
                                 f"looks instruction-tuned: {'; '.join(strong)}. {STAND_IN_FIX}.")


def check_config_model(model_cfg: dict) -> None:
    """The part of the check the config alone allows (names), so a wrong `model.kind` fails before any job: the
    embedded model is SmolLM2-135M-Instruct, and a hub or local id may name an instruct model."""
    if model_cfg.get("kind") != "base":
        return
    if model_cfg.get("source") == "embedded":
        raise InstructModelError("config key model.kind is 'base', but model.source 'embedded' is "
                                 f"SmolLM2-135M-Instruct, an instruction-tuned model. {STAND_IN_FIX}.")
    check_base_model("base", name_signals(model_cfg.get("id"), "model.id"))
