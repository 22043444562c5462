"""SmolLM2-135M-Instruct as a ``transformers`` model, loaded in about a second.

    model, tokenizer = load_smollm2()                  # LlamaForCausalLM (eval mode) and its tokenizer
    model, tokenizer = load_smollm2(torch.bfloat16)    # half the memory

**These weights are a dequantised 4-bit file**, not the original model: the course's copy of SmolLM2
is the GGUF file ``SmolLM2-135M-Instruct.Q4_1.gguf`` (blocks of 32 weights stored as 4-bit integers with
one scale and one offset each; see 02PT/08). ``make assets`` dequantises it once to fp32 and keeps the
result as a ``transformers`` folder in the cache (``llmfs.assets.converted``): config, ``model.safetensors``
and the tokenizer taken from the same GGUF file, with its chat template. Loading that folder takes ~1 s,
against ~15 s to dequantise the GGUF file through ``transformers`` each time.
"""

from __future__ import annotations

import torch

from llmfs import assets

SMOLLM2 = "smollm2_135m_instruct"  # the name of the converted copy in ``llmfs.assets.CONVERTED``


def load_smollm2(dtype: torch.dtype = torch.float32):
    """(model, tokenizer) of SmolLM2-135M-Instruct: a ``transformers.LlamaForCausalLM`` in eval mode,
    on the CPU, in ``dtype``, and its tokenizer (ChatML chat template, ``<|im_end|>`` ends a turn).

    The weights are the Q4_1 GGUF file's, dequantised (close to the original bf16 weights, not equal).
    Never downloads: when the copy is not in the cache, it is built from the cached GGUF file (once,
    ~15 s), and when that is missing too, ``llmfs.assets.AssetMissing`` says to run ``make assets``."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype such as torch.float32 or torch.bfloat16, got {dtype!r}")
    from transformers import AutoTokenizer, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    folder = assets.converted(SMOLLM2)
    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar for a one-second load
    try:
        model = LlamaForCausalLM.from_pretrained(folder, dtype=dtype)
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model.eval(), tokenizer
