"""Generation backends behind one engine interface, chosen by `generation.backend` in the config:

- `hf` (default): transformers `model.generate` with caibase's per-row sampler (`caibase.generation`).
- `vllm`: vLLM's offline `LLM.generate` on a GPU, the optional extra `pip install 'caibase[vllm]'`, imported only
  when chosen. Each request gets its own `SamplingParams(seed=...)` from the same per-sample seed, so a sample
  does not depend on its batch; vLLM's draws differ from the hf backend's for the same seed.

Both return `caibase.generation.Generation` records, and `caibase.generation.generate` drives both with the same
batching and resumable shards:

    model = load_generation_model("results/paper/model", adapters=[...], backend="vllm", dtype="bfloat16")
    generations = generate(model, tokenizer, prompts, settings, seeds)
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from caibase.generation import Generation, GenerationSettings, cut_at_stop
from caibase.models import encode_prompt, load_model, load_tokenizer, resolve_weights_dir

log = logging.getLogger(__name__)

BACKENDS = ("hf", "vllm")
VLLM_MISSING = (
    "generation.backend is 'vllm' but the vllm package is not installed: install the optional extra with "
    "`pip install 'caibase[vllm]'` on a machine with a GPU, or set generation.backend: hf"
)


def load_generation_model(model_dir: str | os.PathLike, adapters: Sequence[str | os.PathLike] = (),
                          dtype: str = "float32", device: str = "cpu", backend: str = "hf", seed: int = 0):
    """The model a stage generates with: a transformers model (`hf`) or a `VllmModel` (`vllm`), adapters merged."""
    if backend == "hf":
        return load_model(model_dir, adapters=list(adapters), dtype=dtype, device=device)
    if backend == "vllm":
        return VllmModel.load(model_dir, adapters=adapters, dtype=dtype, seed=seed)
    raise ValueError(f"generation.backend: unknown backend {backend!r}, expected one of {BACKENDS}")


def vllm_sampling_params(settings: GenerationSettings, seed: int, sampling_params_class):
    """One request's vLLM SamplingParams: our settings and the sample's own seed."""
    return sampling_params_class(
        n=1, temperature=settings.temperature, top_p=settings.top_p, max_tokens=settings.max_new_tokens,
        seed=seed, stop=list(settings.stop_strings) or None, include_stop_str_in_output=False,
        skip_special_tokens=True,
    )


def generation_from_vllm(request_output, settings: GenerationSettings) -> Generation:
    """Our record from one vLLM RequestOutput (`prompt_token_ids`, `outputs[0]` with `text`, `token_ids`,
    `finish_reason` in {stop, length, abort} and `stop_reason`: the matched stop string, a stop token id, or
    None for EOS)."""
    completion = request_output.outputs[0]
    stop_reason = completion.stop_reason
    text, stop = cut_at_stop(completion.text, settings.stop_strings)  # vLLM already cut; this only re-checks
    if isinstance(stop_reason, str):
        stop = stop_reason
    if completion.finish_reason not in ("stop", "length"):
        raise RuntimeError(f"vLLM request finished with {completion.finish_reason!r}, not stop or length")
    return Generation(
        text=text.strip(), prompt_tokens=len(request_output.prompt_token_ids), new_tokens=len(completion.token_ids),
        stop=stop, truncated=completion.finish_reason == "length" and stop is None,
    )


class VllmModel:
    """A vLLM engine over the prepared model; LoRA adapters are merged into a temporary checkpoint first (vLLM
    serves one adapter per request, and a policy such as dpo stacks two)."""

    def __init__(self, llm, tokenizer, sampling_params_class, merged_dir: tempfile.TemporaryDirectory | None = None):
        self.llm = llm
        self.tokenizer = tokenizer
        self.sampling_params_class = sampling_params_class
        self._merged_dir = merged_dir  # removed when this object goes
        engine_config = getattr(getattr(llm, "llm_engine", None), "model_config", None)
        self.context_length = getattr(engine_config, "max_model_len", None)  # prompts are checked against it

    @classmethod
    def load(cls, model_dir, adapters: Sequence[str | os.PathLike] = (), dtype: str = "bfloat16", seed: int = 0):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as err:
            raise ImportError(VLLM_MISSING) from err
        weights, merged = resolve_weights_dir(model_dir), None
        if adapters:
            merged = tempfile.TemporaryDirectory(prefix="caibase-merged-")
            model = load_model(model_dir, adapters=list(adapters), dtype=dtype)
            model.save_pretrained(merged.name, safe_serialization=True)
            load_tokenizer(model_dir).save_pretrained(merged.name)
            del model
            weights = Path(merged.name)
            log.info("merged %d adapter(s) into %s for vLLM", len(adapters), weights)
        llm = LLM(model=str(weights), dtype=dtype, seed=seed, trust_remote_code=False)
        return cls(llm, load_tokenizer(model_dir), SamplingParams, merged)

    def generate_completions(self, prompts: Sequence[str], seeds: Sequence[int],
                       settings: GenerationSettings) -> list[Generation]:
        params = [vllm_sampling_params(settings, seed, self.sampling_params_class) for seed in seeds]
        # Token ids from our tokenizer by `encode_prompt`, exactly as the hf backend feeds the model (and SFT trained).
        inputs = [{"prompt_token_ids": encode_prompt(self.tokenizer, p)} for p in prompts]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        return [generation_from_vllm(output, settings) for output in outputs]
