"""Supervised fine-tuning data: the chat template, answer-only labels, padding and packing.

    text = chat_prompt([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    ids, labels = encode_example(tokenizer, example)   # labels -100 except the answer and <|im_end|>
    batch = collate([encode_example(tokenizer, e) for e in examples], pad_id=tokenizer.pad_token_id)
    packed = pack([encode_example(tokenizer, e) for e in examples], block_size=256)
    loss = sft_loss(model, batch)                        # also works on ``packed``

The conventions are Hugging Face's: ``labels`` has the shape of ``input_ids`` and is *not* shifted (the
loss compares the logits at position t with the label at t + 1), and -100 means "no loss here".
The assistant's reply is what we train on; the system prompt, the question and the padding are context.

Packing puts several examples in one row so that no compute is spent on padding. Each example must
then see only itself: its position ids restart at 0, and the attention mask is block-diagonal causal
(``block_causal_mask``): token i of an example attends to tokens 0..i of the same example only. With
both, a packed row gives, for every example in it, the same logits as that example run alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from llmfs.pretrain.checkpoint import unwrap

IGNORE_INDEX = -100  # labels equal to this give no loss (PyTorch's cross_entropy default)
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
# SmolLM2-Instruct's chat template adds this system message when the conversation does not start with one
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _check_messages(messages) -> None:
    if not isinstance(messages, (list, tuple)) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages):
        raise ValueError("messages must be a non-empty list of dicts {'role': str, 'content': str}, "
                         f"got {messages!r:.120}")


def chat_prompt(messages: Sequence[dict], add_generation_prompt: bool = False, default_system: str = DEFAULT_SYSTEM) -> str:
    """The text SmolLM2-Instruct's chat template makes of ``messages`` (ChatML), written by hand:

        <|im_start|>system\\n{system}<|im_end|>\\n      (DEFAULT_SYSTEM if the first message is not a system one)
        <|im_start|>{role}\\n{content}<|im_end|>\\n     (one per message)
        <|im_start|>assistant\\n                        (if add_generation_prompt: the model answers from here)

    Equal to ``tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)``."""
    _check_messages(messages)
    if not isinstance(add_generation_prompt, bool):
        raise TypeError(f"add_generation_prompt must be True or False, got {add_generation_prompt!r}")
    if not isinstance(default_system, str):
        raise TypeError(f"default_system must be a str, got {type(default_system).__name__}")
    parts = []
    if messages[0]["role"] != "system":
        parts.append(f"{IM_START}system\n{default_system}{IM_END}\n")
    parts += [f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages]
    if add_generation_prompt:
        parts.append(f"{IM_START}assistant\n")
    return "".join(parts)


def to_messages(example: dict, system: str | None = None) -> list[dict]:
    """A task example (``llmfs.finetune.tasks``) as a conversation: the instruction and its input in one
    user message (separated by a blank line), then the output as the assistant's reply."""
    if not isinstance(example, dict) or not all(isinstance(example.get(k), str) for k in ("instruction", "input", "output")):
        raise ValueError(f"example must be a dict with str 'instruction', 'input' and 'output', got {example!r:.120}")
    if system is not None and not isinstance(system, str):
        raise TypeError(f"system must be None or a str, got {type(system).__name__}")
    user = example["instruction"] + (f"\n\n{example['input']}" if example["input"] else "")
    messages = [{"role": "user", "content": user}, {"role": "assistant", "content": example["output"]}]
    return ([{"role": "system", "content": system}] if system is not None else []) + messages


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_example(tokenizer, example: dict | Sequence[dict], system: str | None = None) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one conversation, two lists of the same length.

    ``example`` is a task dict (see ``to_messages``; ``system`` replaces the default system message) or a
    list of messages ending with the assistant's.
    Every assistant reply, with its closing ``<|im_end|>``, keeps its token ids as labels: the model
    learns to answer and to stop. Everything else (system, user, the ``<|im_start|>assistant\\n`` header)
    is labelled -100. The text is ``chat_prompt`` of the conversation, without the final newline.

    The context before each reply and the reply itself are tokenized separately, as at generation
    time: the prompt is tokenized alone, then the model produces the reply's tokens after it."""
    if not callable(tokenizer) or not hasattr(tokenizer, "convert_tokens_to_ids"):
        raise TypeError(f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}")
    if isinstance(example, dict):
        messages = to_messages(example, system)
    elif system is not None:
        raise ValueError("system applies to a task dict; a list of messages brings its own system message")
    else:
        messages = example
    _check_messages(messages)
    if messages[-1]["role"] != "assistant":
        raise ValueError("the conversation must end with the assistant's reply (what the model learns to write)")
    end_id = tokenizer.convert_tokens_to_ids(IM_END)
    if not isinstance(end_id, int) or _encode(tokenizer, IM_END) != [end_id]:
        raise ValueError(f"the tokenizer must have {IM_END!r} as one special token (a ChatML tokenizer such as SmolLM2's)")
    input_ids: list[int] = []
    labels: list[int] = []
    # text not tokenized yet that is context, not reply: it starts as chat_prompt does
    context = f"{IM_START}system\n{DEFAULT_SYSTEM}{IM_END}\n" if messages[0]["role"] != "system" else ""
    for m in messages:
        if m["role"] != "assistant":
            context += f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n"
            continue
        ids = _encode(tokenizer, context + f"{IM_START}assistant\n")
        reply = _encode(tokenizer, m["content"] + IM_END)
        input_ids += ids + reply
        labels += [IGNORE_INDEX] * len(ids) + reply
        context = "\n"  # the newline after <|im_end|> belongs to the next turn's context
    return input_ids, labels


def _pairs(batch, name: str) -> list[tuple[list[int], list[int]]]:
    """``batch`` checked and as lists of ints: a non-empty list of (input_ids, labels) of equal lengths."""
    if not isinstance(batch, (list, tuple)) or not batch:
        raise ValueError(f"{name} must be a non-empty list of (input_ids, labels) pairs, got {batch!r:.80}")
    pairs = []
    for p in batch:
        try:
            if not (isinstance(p, (list, tuple)) and len(p) == 2) or isinstance(p[0], str) or isinstance(p[1], str):
                raise TypeError
            ids, labels = [int(x) for x in p[0]], [int(x) for x in p[1]]
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"{name} must hold (input_ids, labels) pairs of int sequences, got {p!r:.80}") from None
        if len(ids) != len(labels) or not ids:
            raise ValueError(f"each (input_ids, labels) pair of {name} must hold two non-empty sequences of one "
                             f"length, got lengths {len(ids)} and {len(labels)}")
        pairs.append((ids, labels))
    return pairs


def _check_pad_id(pad_id) -> None:
    if isinstance(pad_id, bool) or not isinstance(pad_id, int) or pad_id < 0:
        raise ValueError(f"pad_id must be a token id (an integer >= 0), got {pad_id!r}")


def collate(batch: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of (input_ids, labels) to the longest, on the right.

    Returns ``input_ids`` (B, T) filled with ``pad_id``, ``labels`` (B, T) filled with -100 (no loss on
    padding) and ``attention_mask`` (B, T): 1 on real tokens, 0 on padding (which no token attends to)."""
    pairs = _pairs(batch, "batch")
    _check_pad_id(pad_id)
    T = max(len(ids) for ids, _ in pairs)
    input_ids = torch.full((len(pairs), T), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), T), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(pairs), T), dtype=torch.long)
    for row, (ids, lab) in enumerate(pairs):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        labels[row, :len(lab)] = torch.tensor(lab)
        attention_mask[row, :len(ids)] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}


def pack(examples: Sequence[tuple[list[int], list[int]]], block_size: int, pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Pack (input_ids, labels) pairs into rows of ``block_size`` tokens, in order, greedily: an example
    goes at the end of the current row if it fits, else it starts a new row; never split.

    Returns, each (N, block_size):
    - ``input_ids``, ``labels``: the examples side by side, the tail of each row padded (``pad_id``, -100);
      the first label of every example is -100, so no loss crosses from one example into the next;
    - ``position_ids``: 0, 1, 2... restarting at every example (RoPE sees each example from position 0);
    - ``seq_ids``: which example of its row each token belongs to (0, 0, 0, 1, 1, ...); the padding at
      the end of a row is one more "example", so that ``block_causal_mask`` has no empty row.
    Pass them to a ``transformers`` model as ``input_ids``, ``position_ids`` and
    ``attention_mask=block_causal_mask(seq_ids, dtype)`` (eager or sdpa attention)."""
    pairs = _pairs(examples, "examples")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be an integer >= 1, got {block_size!r}")
    _check_pad_id(pad_id)
    rows: list[list[tuple[list[int], list[int]]]] = [[]]
    used = 0
    for i, (ids, lab) in enumerate(pairs):
        if len(ids) > block_size:
            raise ValueError(f"example {i} has {len(ids)} tokens, more than block_size={block_size}: "
                             f"drop or shorten it, or pack into longer blocks")
        if used + len(ids) > block_size:
            rows.append([])
            used = 0
        rows[-1].append((ids, lab))
        used += len(ids)
    out = {"input_ids": torch.full((len(rows), block_size), pad_id, dtype=torch.long),
           "labels": torch.full((len(rows), block_size), IGNORE_INDEX, dtype=torch.long),
           "position_ids": torch.zeros((len(rows), block_size), dtype=torch.long),
           "seq_ids": torch.zeros((len(rows), block_size), dtype=torch.long)}
    for r, row in enumerate(rows):
        start = 0
        for k, (ids, lab) in enumerate(row):
            end = start + len(ids)
            out["input_ids"][r, start:end] = torch.tensor(ids)
            out["labels"][r, start:end] = torch.tensor([IGNORE_INDEX] + lab[1:])
            out["position_ids"][r, start:end] = torch.arange(len(ids))
            out["seq_ids"][r, start:end] = k
            start = end
        out["position_ids"][r, start:] = torch.arange(block_size - start)  # the padding, one more "example"
        out["seq_ids"][r, start:] = len(row)
    return out


def block_causal_mask(seq_ids: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """seq_ids (B, T) -> additive attention mask (B, 1, T, T): 0 where query i may attend to key j (same
    example, j <= i), the most negative ``dtype`` number elsewhere. ``transformers`` passes a 4-D mask
    as it is to its attention functions, which add it to the scores (eager) or hand it to sdpa."""
    if not isinstance(seq_ids, torch.Tensor) or seq_ids.dim() != 2 or seq_ids.dtype not in (torch.int64, torch.int32):
        got = f"{tuple(seq_ids.shape)} {seq_ids.dtype}" if isinstance(seq_ids, torch.Tensor) else type(seq_ids).__name__
        raise ValueError(f"seq_ids must be a (batch, time) integer tensor, got {got}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    T = seq_ids.shape[1]
    same = seq_ids[:, :, None] == seq_ids[:, None, :]  # (B, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=seq_ids.device).tril()
    allowed = (same & causal)[:, None]  # (B, 1, T, T)
    zero = torch.zeros((), dtype=dtype, device=seq_ids.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of next-token predictions over the labels that are not -100.
    logits (B, T, V), labels (B, T), unshifted: logits[:, t] is scored against labels[:, t + 1]."""
    if not (isinstance(logits, torch.Tensor) and isinstance(labels, torch.Tensor) and logits.dim() == 3
            and logits.is_floating_point() and labels.dtype == torch.long and labels.shape == logits.shape[:2]):
        got = ", ".join(f"{n} {tuple(t.shape)} {t.dtype}" if isinstance(t, torch.Tensor) else f"{n} {type(t).__name__}"
                        for n, t in (("logits", logits), ("labels", labels)))
        raise ValueError(f"need float logits (B, T, V) and int64 labels (B, T), got {got}")
    shift_logits = logits[:, :-1].float().reshape(-1, logits.size(-1))
    shift_labels = labels[:, 1:].reshape(-1)
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX)


def _attention_dtype(model: torch.nn.Module, device: torch.device) -> torch.dtype:
    """The dtype the attention scores will have: autocast's when it is on, else the embeddings'."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    get_embeddings = getattr(unwrap(model), "get_input_embeddings", None)
    weight = getattr(get_embeddings(), "weight", None) if callable(get_embeddings) else None
    return weight.dtype if isinstance(weight, torch.Tensor) and weight.is_floating_point() else torch.float32


def sft_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The fine-tuning loss of a ``transformers`` causal LM on a batch of ``collate`` (padded, with an
    ``attention_mask``) or of ``pack`` (with ``position_ids`` and ``seq_ids``): ``causal_lm_loss``.
    Usable as the ``loss_fn`` of ``llmfs.finetune.trainer.finetune``."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a transformers causal LM), got {type(model).__name__}")
    if not isinstance(batch, dict) or not {"input_ids", "labels"} <= set(batch):
        raise ValueError(f"batch must be a dict from collate or pack (input_ids, labels, ...), got {batch!r:.80}")
    kwargs = {"input_ids": batch["input_ids"], "use_cache": False}
    if "seq_ids" in batch:
        kwargs["position_ids"] = batch["position_ids"]
        kwargs["attention_mask"] = block_causal_mask(batch["seq_ids"], _attention_dtype(model, batch["input_ids"].device))
    elif "attention_mask" in batch:
        kwargs["attention_mask"] = batch["attention_mask"]
    return causal_lm_loss(model(**kwargs).logits, batch["labels"])
