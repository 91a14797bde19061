"""Process setup shared by every stage: logging to the rule's log file, torch threads, seeds, determinism."""

from __future__ import annotations

import logging
import os
import sys


def setup(log_path: str | None, threads: int | None = None, seed: int | None = None) -> logging.Logger:
    """Send stdout, stderr and logging to `log_path`; with `threads`, also fix torch threads, every RNG from
    `seed`, and deterministic kernels (stages that run no model skip importing torch)."""
    if log_path:
        stream = open(log_path, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        sys.stdout = sys.stderr = stream
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr, force=True)
    logger = logging.getLogger("caibase")
    if threads is None:
        return logger
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch
    from transformers import set_seed

    torch.set_num_threads(threads)
    if seed is not None:
        set_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return logger
