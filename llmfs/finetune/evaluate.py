"""Exact match of a chat model on the generated tasks: greedy replies, checked against the answers.

    replies = greedy_replies(model, tokenizer, examples)          # one decoded reply per task example
    score, replies, right = exact_match(model, tokenizer, examples)  # score: fraction of right replies

The model gets each conversation up to the generation prompt (``sft.chat_prompt``) and decodes greedily
with ``model.generate`` (KV cache), a batch of prompts at a time, padded on the **left** so that every
prompt ends where its reply starts. A reply may be as long as its expected answer plus ``slack``
tokens (whatever the batch: batching changes the speed, not the replies); one that did not write
``<|im_end|>`` within them is marked cut with " …" (and is then wrong). ``tasks.check`` compares after
light normalisation. Prompts are sorted by length, so a batch wastes little on padding; replies come
back in the order of ``examples``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn as nn

from llmfs.finetune import sft, tasks

CUT = " …"  # appended to a reply that was still going when its token budget ran out


def _check(model, tokenizer, examples, batch_size, slack) -> None:
    if not isinstance(model, nn.Module) or not hasattr(model, "generate"):
        raise TypeError(f"model must be a transformers causal LM (with .generate), got {type(model).__name__}")
    if not callable(tokenizer) or not hasattr(tokenizer, "decode"):
        raise TypeError(f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}")
    if isinstance(examples, (str, dict)) or not isinstance(examples, Sequence) or not all(
            isinstance(e, dict) and isinstance(e.get("output"), str) for e in examples):
        raise ValueError("examples must be a list of task examples made by llmfs.finetune.tasks.make_tasks")
    for name, value in (("batch_size", batch_size), ("slack", slack)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < (1 if name == "batch_size" else 0):
            raise ValueError(f"{name} must be an integer >= {1 if name == 'batch_size' else 0}, got {value!r}")


def greedy_replies(model: nn.Module, tokenizer, examples: Sequence[dict], batch_size: int = 32, slack: int = 2,
                   system: str | None = None) -> list[str]:
    """The model's greedy reply (decoded text) to each task example, in order; " …" marks a cut reply.
    ``system``: a system message for every prompt (None: the template's default)."""
    _check(model, tokenizer, examples, batch_size, slack)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    order = sorted(range(len(examples)), key=lambda i: len(examples[i]["instruction"] + examples[i]["input"]))
    replies = [""] * len(examples)
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            budget = [len(tokenizer(examples[i]["output"], add_special_tokens=False)["input_ids"]) + slack for i in idx]
            prompts = [sft.chat_prompt(sft.to_messages(examples[i], system)[:-1], add_generation_prompt=True) for i in idx]
            enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max(budget), do_sample=False, pad_token_id=tokenizer.pad_token_id)
            for i, n, new in zip(idx, budget, out[:, enc["input_ids"].shape[1]:].tolist()):  # new: (max(budget),) ids
                new = new[:n]  # each reply gets its own budget, whatever its batch
                text = tokenizer.decode(new, skip_special_tokens=True)
                replies[i] = text if tokenizer.eos_token_id in new else text + CUT
    finally:
        tokenizer.padding_side = side
    return replies


def exact_match(model: nn.Module, tokenizer, examples: Sequence[dict], batch_size: int = 32, slack: int = 2,
                system: str | None = None) -> tuple[float, list[str], list[bool]]:
    """(fraction right, replies, right or wrong per example) of the model's greedy replies (``greedy_replies``)."""
    replies = greedy_replies(model, tokenizer, examples, batch_size, slack, system)
    right = [tasks.check(e, r) for e, r in zip(examples, replies)]
    return sum(right) / max(len(right), 1), replies, right
