"""Exact match of a chat model on the generated tasks: greedy replies, checked against the answers.

    replies = greedy_replies(model, tokenizer, examples)          # one decoded reply per task example
    ids = generate_ids(model, tokenizer, prompts, max_new=24)     # token ids of greedy continuations
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


def _check_lm(model, tokenizer, batch_size) -> None:
    if not isinstance(model, nn.Module) or not hasattr(model, "generate"):
        raise TypeError(f"model must be a transformers causal LM (with .generate), got {type(model).__name__}")
    if not callable(tokenizer) or not hasattr(tokenizer, "decode"):
        raise TypeError(f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}")
    _check_int("batch_size", batch_size, 1)


def _check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def generate_ids(model: nn.Module, tokenizer, prompts: Sequence[str], max_new: int | Sequence[int],
                 batch_size: int = 32) -> list[list[int]]:
    """Greedy continuation of each prompt (text that already holds the chat template), as token ids, in order.

    ``max_new``: the token budget, one for all prompts or one per prompt. A continuation ends with the
    eos token when the model wrote it within its budget; what a batch generated after that is dropped."""
    _check_lm(model, tokenizer, batch_size)
    if isinstance(prompts, str) or not isinstance(prompts, Sequence) or not all(isinstance(p, str) for p in prompts):
        raise ValueError("prompts must be a list of str")
    budgets = [max_new] * len(prompts) if isinstance(max_new, numbers.Integral) else max_new
    if not isinstance(budgets, Sequence) or len(budgets) != len(prompts):
        raise ValueError(f"max_new must be an integer >= 1 or one per prompt ({len(prompts)}), got {max_new!r:.80}")
    for n in budgets:
        _check_int("max_new", n, 1)
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # similar lengths together: little padding
    out_ids: list[list[int]] = [[] for _ in prompts]
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(model.device)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max(budgets[i] for i in idx), do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id)
            for i, new in zip(idx, out[:, enc["input_ids"].shape[1]:].tolist()):  # new: (longest budget,) ids
                new = new[:budgets[i]]  # each prompt gets its own budget, whatever its batch
                out_ids[i] = new[:new.index(tokenizer.eos_token_id) + 1] if tokenizer.eos_token_id in new else new
    finally:
        tokenizer.padding_side = side
    return out_ids


def greedy_replies(model: nn.Module, tokenizer, examples: Sequence[dict], batch_size: int = 32, slack: int = 2,
                   system: str | None = None) -> list[str]:
    """The model's greedy reply (decoded text) to each task example, in order; " …" marks a cut reply.
    ``system``: a system message for every prompt (None: the template's default)."""
    if isinstance(examples, (str, dict)) or not isinstance(examples, Sequence) or not all(
            isinstance(e, dict) and isinstance(e.get("output"), str) for e in examples):
        raise ValueError("examples must be a list of task examples made by llmfs.finetune.tasks.make_tasks")
    _check_int("slack", slack, 0)
    _check_lm(model, tokenizer, batch_size)
    prompts = [sft.chat_prompt(sft.to_messages(e, system)[:-1], add_generation_prompt=True) for e in examples]
    budgets = [len(tokenizer(e["output"], add_special_tokens=False)["input_ids"]) + slack for e in examples]
    return [tokenizer.decode(ids, skip_special_tokens=True) + ("" if tokenizer.eos_token_id in ids else CUT)
            for ids in generate_ids(model, tokenizer, prompts, budgets, batch_size)]


def exact_match(model: nn.Module, tokenizer, examples: Sequence[dict], batch_size: int = 32, slack: int = 2,
                system: str | None = None) -> tuple[float, list[str], list[bool]]:
    """(fraction right, replies, right or wrong per example) of the model's greedy replies (``greedy_replies``)."""
    replies = greedy_replies(model, tokenizer, examples, batch_size, slack, system)
    right = [tasks.check(e, r) for e, r in zip(examples, replies)]
    return sum(right) / max(len(right), 1), replies, right
