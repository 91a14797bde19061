"""The generation engine every stage uses: batched, left-padded, length-bucketed, KV-cached, seeded per sample.

Sampling is done by a logits processor that draws each row's token from that row's own `torch.Generator`
(seeded from the run seed and the sample's key), so a sample's draw does not depend on which other prompts
share its batch. Generation stops at the configured stop strings, and the text is cut before them.
Other backends (vLLM, `caibase.backends`) plug into the same batching and shards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from caibase.forward import batch_plan, left_pad

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.95
    batch_size: int = 16
    stop_strings: tuple[str, ...] = ()

    def asdict(self) -> dict:
        return asdict(self)


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    new_tokens: int
    stop: str | None = None  # the stop string that ended it, if any
    truncated: bool = False  # hit max_new_tokens without EOS or a stop string


def sample_seed(seed: int, key: str) -> int:
    """A 63-bit seed for one sample, from the run seed and a stable key (e.g. prompt id and stage)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") >> 1


class PerRowSampler(LogitsProcessor):
    """Temperature + nucleus sampling with one generator per batch row; returns one-hot logits for greedy decoding.

    Each row draws one uniform number from its own generator and picks its token by inverse CDF over the nucleus,
    so a row's token depends only on its own logits and seed. The nucleus is found among the `candidates` most
    likely tokens (doubled until it fits, up to the whole vocabulary) instead of sorting the whole vocabulary, and
    the candidates are put in a canonical order (probability descending, then token id), so the draw does not
    depend on how many candidates were needed.
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float, candidates: int = 256):
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p
        self.candidates = candidates

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores.float()
        if self.temperature <= 0:
            choice = scores.argmax(dim=-1)
        else:
            probs, token_ids = self.nucleus(torch.softmax(scores / self.temperature, dim=-1))
            uniform = torch.stack([torch.rand((), generator=gen) for gen in self.generators]).to(scores.device)
            cdf = probs.cumsum(dim=-1)
            position = torch.searchsorted(cdf, (uniform * cdf[:, -1]).unsqueeze(-1), right=True)
            last_kept = (probs > 0).sum(dim=-1, keepdim=True) - 1  # rounding can put the draw at the total mass
            choice = token_ids.gather(-1, torch.minimum(position, last_kept)).squeeze(-1)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(-1, choice.unsqueeze(-1), 0.0)
        return out

    def nucleus(self, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row, the smallest set of most likely tokens whose mass reaches top_p: (probabilities with the tokens
        outside the nucleus zeroed, token ids), both in canonical order."""
        vocab = probs.shape[-1]
        if self.top_p >= 1.0:
            return probs, torch.arange(vocab, device=probs.device).expand_as(probs)
        k = min(self.candidates, vocab)
        while True:
            top, token_ids = probs.topk(k, dim=-1)
            if k == vocab or bool((top.sum(dim=-1) >= self.top_p).all()):
                break
            k = min(2 * k, vocab)
        by_id = token_ids.argsort(dim=-1)  # canonical order: ties in probability broken by token id
        top, token_ids = top.gather(-1, by_id), token_ids.gather(-1, by_id)
        by_prob = top.argsort(dim=-1, descending=True, stable=True)
        top, token_ids = top.gather(-1, by_prob), token_ids.gather(-1, by_prob)
        keep = top.cumsum(dim=-1) - top < self.top_p
        return top * keep, token_ids


def cut_at_stop(text: str, stop_strings: Sequence[str]) -> tuple[str, str | None]:
    """Cut `text` before the earliest stop string; return the kept text and the stop that matched."""
    best, matched = len(text), None
    for stop in stop_strings:
        pos = text.find(stop)
        if 0 <= pos < best:
            best, matched = pos, stop
    return text[:best], matched


def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    settings: GenerationSettings,
    seeds: Sequence[int],
    shard_path: str | os.PathLike | None = None,
    progress: bool = True,
    identity: dict | None = None,
    prompt_ids: Sequence[str] | None = None,
) -> list[Generation]:
    """Generate one completion per prompt; `seeds[i]` seeds prompt i's sampling.

    `model` is a transformers model (the `hf` backend) or a backend object with a `generate_completions(prompts, seeds,
    settings)` method, such as `caibase.backends.VllmModel`; batching and shards are the same for both.

    Prompts are tokenized by `caibase.models.encode_prompt`: the ids SFT and DPO train on for the same text (the
    tokenizer's BOS, once). Before any generation, every prompt is checked against the model's context: a prompt
    whose tokens plus `max_new_tokens` exceed it raises `PromptTooLongError`, naming it by `prompt_ids[i]` (else by
    its index).

    With `shard_path`, each finished batch is appended to that JSONL file and a rerun skips the batches already
    there, so an interrupted stage resumes where it stopped and ends with the same output. The shard's fingerprint
    (prompts and their token ids, seeds, settings, model and tokenizer, and `identity`: what the caller knows of the
    weights, such as `shard_identity(model_dir, adapters, backend)`) is written beside it; a shard whose fingerprint
    differs is discarded, with a log line naming what changed.
    """
    from tqdm.auto import tqdm

    if len(seeds) != len(prompts):
        raise ValueError("one seed per prompt is required")
    from caibase.models import encode_prompt

    encoded = [encode_prompt(tokenizer, p) for p in prompts]  # the ids SFT/DPO trained on for the same text
    lengths = [len(ids) for ids in encoded]
    check_context(lengths, settings.max_new_tokens, context_length(model), prompt_ids)
    batches = batch_plan(lengths, settings.batch_size)
    results: list[Generation | None] = [None] * len(prompts)
    if shard_path:
        fingerprint = shard_fingerprint(model, tokenizer, prompts, seeds, settings, identity, encoded)
        done = _read_shard(shard_path, results) if _shard_matches(shard_path, fingerprint) else set()
    else:
        done = set()
    backend_batch = getattr(model, "generate_completions", None)  # not `generate_batch`: transformers models have one
    device = None if backend_batch else next(model.parameters()).device
    shard = open(shard_path, "a", encoding="utf-8") if shard_path else None  # noqa: SIM115
    try:
        for batch_index, batch in enumerate(tqdm(batches, desc="generate", disable=not progress, mininterval=5)):
            if batch_index in done:
                continue
            if backend_batch:
                generations = backend_batch([prompts[i] for i in batch], [seeds[i] for i in batch], settings)
            else:
                generations = _generate_batch(model, tokenizer, [encoded[i] for i in batch],
                                              [seeds[i] for i in batch], settings, device)
            for i, generation in zip(batch, generations, strict=True):
                results[i] = generation
            if shard:
                shard.write(json.dumps({"batch": batch_index, "indices": batch,
                                        "generations": [asdict(g) for g in generations]}) + "\n")
                shard.flush()
                os.fsync(shard.fileno())
    finally:
        if shard:
            shard.close()
    return results


class PromptTooLongError(ValueError):
    """A prompt that does not fit the model's context with its `max_new_tokens`."""


def context_length(model) -> int | None:
    """The model's context in tokens: `config.max_position_embeddings` (transformers), a backend's
    `context_length`, or None when unknown."""
    config = getattr(model, "config", None)
    if config is not None:
        return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return getattr(model, "context_length", None)


def check_context(lengths: Sequence[int], max_new_tokens: int, context: int | None,
                  prompt_ids: Sequence[str] | None = None) -> None:
    """Raise PromptTooLongError naming every prompt whose tokens plus `max_new_tokens` exceed `context`."""
    if context is None:
        return
    over = [i for i, n in enumerate(lengths) if n + max_new_tokens > context]
    if over:
        names = [f"{prompt_ids[i] if prompt_ids else f'prompt #{i}'} ({lengths[i]} tokens)" for i in over]
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        raise PromptTooLongError(
            f"{len(over)} prompt(s) do not fit the model's context of {context} tokens with max_new_tokens="
            f"{max_new_tokens}: {shown}; shorten or drop them"
        )


FINGERPRINT_SUFFIX = ".fingerprint.json"


def _digest(values: Sequence) -> str:
    return hashlib.sha256(json.dumps(list(values), ensure_ascii=False).encode()).hexdigest()


def model_identity(model) -> dict:
    """What the loaded model itself tells about its outputs: class, checkpoint path, dtype and device type."""
    if getattr(model, "generate_completions", None):
        return {"class": type(model).__name__}
    parameter = next(model.parameters())
    return {"class": type(model).__name__, "name_or_path": str(getattr(model, "name_or_path", "")),
            "dtype": str(parameter.dtype), "device": parameter.device.type}


def shard_identity(model_dir: str | os.PathLike, adapters: Sequence[str | os.PathLike] = (),
                   backend: str = "hf") -> dict:
    """A shard fingerprint's `identity` for a prepared model: the weights' sha256 from model_info.json, the sha256
    of each merged adapter's safetensors, and the backend."""
    from caibase.models import load_model_info, weights_sha256

    return {"model_sha256": load_model_info(model_dir)["sha256"],
            "adapters": [weights_sha256(Path(adapter)) for adapter in adapters], "backend": backend}


def shard_fingerprint(model, tokenizer, prompts: Sequence[str], seeds: Sequence[int], settings: GenerationSettings,
                      identity: dict | None = None, encoded: Sequence[Sequence[int]] | None = None) -> dict:
    """Everything a shard's batches depend on, JSON-normalized: prompts, their token ids (`encoded`, else
    `encode_prompt` of each) and seeds (hashed), the settings, the model and tokenizer, and the caller's `identity`
    of the weights."""
    from caibase.models import encode_prompt

    if encoded is None:
        encoded = [encode_prompt(tokenizer, p) for p in prompts]
    fingerprint = {
        "prompts_sha256": _digest(prompts), "n_prompts": len(prompts), "seeds_sha256": _digest(map(str, seeds)),
        "token_ids_sha256": _digest(list(ids) for ids in encoded),
        "settings": settings.asdict(), "model": model_identity(model),
        "tokenizer": {"class": type(tokenizer).__name__, "name_or_path": str(getattr(tokenizer, "name_or_path", "")),
                      "vocab": len(tokenizer)},
        "identity": identity or {},
    }
    return json.loads(json.dumps(fingerprint, sort_keys=True))


def _shard_matches(shard_path, fingerprint: dict) -> bool:
    """Whether an existing shard was written for `fingerprint`; if not, it is discarded (with a log line saying
    why) and the new fingerprint is written, so the shard holds only batches of this run."""
    shard_path = Path(shard_path)
    fingerprint_path = Path(f"{shard_path}{FINGERPRINT_SUFFIX}")
    old = None
    if fingerprint_path.exists():
        try:
            old = json.loads(fingerprint_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = None
    if old == fingerprint:
        return True
    if shard_path.exists():
        if old is None:
            why = f"it has no readable fingerprint {fingerprint_path.name}"
        else:
            changed = sorted(k for k in fingerprint.keys() | old.keys() if fingerprint.get(k) != old.get(k))
            details = [f"{k} {old.get(k)} -> {fingerprint.get(k)}" for k in changed if k in ("settings", "model")]
            why = f"its fingerprint differs in {', '.join(changed)}" + (f" ({'; '.join(details)})" if details else "")
        log.warning("discarding the resume shard %s: %s", shard_path, why)
        shard_path.unlink()
    from caibase.artifacts import write_json

    write_json(fingerprint_path, fingerprint)
    return False


def remove_shard(shard_path: str | os.PathLike) -> None:
    """Remove a finished shard and its fingerprint."""
    for path in (Path(shard_path), Path(f"{shard_path}{FINGERPRINT_SUFFIX}")):
        path.unlink(missing_ok=True)


def _read_shard(shard_path, results: list) -> set[int]:
    """Load finished batches from a shard file; a torn last line (killed mid-write) is ignored."""
    done = set()
    if not os.path.exists(shard_path):
        return done
    with open(shard_path, encoding="utf-8") as fh:
        for line in fh:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break
            for i, g in zip(entry["indices"], entry["generations"], strict=True):
                results[i] = Generation(**g)
            done.add(entry["batch"])
    log.info("resuming from %s: %d batches already done", shard_path, len(done))
    return done


def _generate_batch(model, tokenizer, encoded, seeds, settings: GenerationSettings, device) -> list[Generation]:
    """`encoded`: each prompt's ids from `encode_prompt`, left-padded into one batch by
    `caibase.forward.left_pad` (`model.generate` derives the position ids from the mask)."""
    lengths = [len(ids) for ids in encoded]
    batch = left_pad(encoded, tokenizer.pad_token_id, device)
    sampler = PerRowSampler(seeds, settings.temperature, settings.top_p)
    with torch.inference_mode():
        out = model.generate(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            do_sample=False,
            max_new_tokens=settings.max_new_tokens,
            logits_processor=LogitsProcessorList([sampler]),
            stop_strings=list(settings.stop_strings) or None,
            tokenizer=tokenizer,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            use_cache=True,
        )
    new = out[:, batch.input_ids.shape[1] :]
    generations = []
    for row, prompt_tokens in enumerate(lengths):
        ids = new[row].tolist()
        n_new = len(ids)
        while n_new and ids[n_new - 1] == tokenizer.pad_token_id:
            n_new -= 1
        ended_eos = tokenizer.eos_token_id in ids[:n_new] or n_new < len(ids)
        raw = tokenizer.decode(ids[:n_new], skip_special_tokens=True)
        text, stop = cut_at_stop(raw, settings.stop_strings)
        generations.append(Generation(
            text=text.strip(), prompt_tokens=prompt_tokens, new_tokens=n_new, stop=stop,
            truncated=stop is None and not ended_eos and n_new >= settings.max_new_tokens,
        ))
    return generations


SPECIAL_TOKEN_LEAK = re.compile(r"<\|[A-Za-z0-9_]{1,40}\|>|</?s>|\[/?INST\]|<<SYS>>")
ROLE_MARKER = re.compile(r"(?:^|\n)\s*(?:Human|Assistant|User)\s*:")


def degenerate_reason(text: str, prompt: str = "", min_words_for_loop: int = 12) -> str | None:
    """Why a generation is unusable, or None. Checked in order: empty, leaked special tokens, a role marker
    (the model writing another turn inside its reply), a repetition loop, an echo of the prompt."""
    stripped = text.strip()
    if not stripped:
        return "empty"
    if SPECIAL_TOKEN_LEAK.search(stripped):
        return "special_token_leak"
    if ROLE_MARKER.search(stripped):
        return "role_marker"
    words = stripped.lower().split()
    if len(words) >= min_words_for_loop:
        grams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
        if len(set(grams)) / len(grams) < 0.5:
            return "repetition_loop"
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    if len(lines) >= 3 and len(set(lines)) <= len(lines) / 2:
        return "repetition_loop"
    if prompt:
        from caibase.prompts import normalize

        norm_text, norm_prompt = normalize(stripped), normalize(prompt)
        if norm_prompt and (norm_text == norm_prompt or (len(norm_prompt) > 20 and norm_prompt in norm_text
                                                         and len(norm_text) < 1.5 * len(norm_prompt))):
            return "echoed_prompt"
    return None
