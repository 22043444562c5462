"""Classification fine-tuning: a language model's body, read at the last real token, and a small head.

    batch = pad_batch([ids_1, ids_2], pad_id=tokenizer.pad_token_id, side="left")  # input_ids, attention_mask
    clf = SequenceClassifier(model.model, n_classes=2)     # LlamaModel + Linear(hidden, 2, bias=False)
    logits = clf(batch["input_ids"], batch["attention_mask"])            # (B, 2)
    batch["labels"] = torch.tensor([0, 1])
    loss, metrics = classification_loss(clf, batch)        # the loss_fn of llmfs.finetune.trainer.finetune

A causal model's last real token is the only one that has seen the whole text, so that is where the
class is read (``pool_last``). Reading position -1 instead reads a padding token when the batch is padded
on the right, and the prediction then depends on how much padding follows the text. Here the last real
token is found from the attention mask (1 on text, 0 on padding), so padding on either side changes
nothing, and real tokens are numbered 0, 1, 2... whatever padding precedes them (``position_ids``).
``transformers``' ``LlamaForSequenceClassification`` reads the same token (the rightmost one that is not
``pad_token_id``) with a head called ``score``: copy the head and the two give the same logits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def _describe(t) -> str:
    if isinstance(t, torch.Tensor):
        return f"{str(t.dtype).removeprefix('torch.')} tensor of shape {tuple(t.shape)}"
    return type(t).__name__


def _check_mask(attention_mask) -> torch.Tensor:
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.dim() != 2 or attention_mask.is_floating_point() \
            or attention_mask.is_complex() or attention_mask.numel() == 0:
        raise ValueError(f"attention_mask must be a (batch, time) integer or bool tensor of 0s and 1s, "
                         f"got {_describe(attention_mask)}")
    if attention_mask.device.type == "meta":
        raise ValueError("attention_mask is on the meta device: it has no values to read")
    mask = attention_mask.long()
    if ((mask != 0) & (mask != 1)).any():
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (text)")
    if (mask.sum(1) == 0).any():
        raise ValueError(f"rows {(mask.sum(1) == 0).nonzero().flatten().tolist()[:8]} of attention_mask are all 0: "
                         f"every row needs at least one real token")
    return mask


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) mask of 0s and 1s -> (B,) int64: the position of the rightmost 1 of each row, the last real
    token whether the padding is on the right (1 1 1 0 0 -> 2) or on the left (0 0 1 1 1 -> 4)."""
    mask = _check_mask(attention_mask)
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (positions * mask).argmax(dim=1)  # the largest position whose mask is 1


def pool_last(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """hidden (B, T, d), attention_mask (B, T) -> (B, d): each row's vector at its last real token."""
    if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3 or not hidden.is_floating_point():
        raise ValueError(f"hidden must be a (batch, time, dim) float tensor, got {_describe(hidden)}")
    index = last_token_index(attention_mask)
    if attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must match hidden's (batch, time) "
                         f"{tuple(hidden.shape[:2])}")
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index.to(hidden.device)]


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) mask -> (B, T) int64 positions: the real tokens of each row numbered 0, 1, 2... from the first
    one, whatever padding precedes them (left padding then changes no position); padding gets 0."""
    mask = _check_mask(attention_mask)
    return (mask.cumsum(dim=1) - 1).clamp(min=0) * mask


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, side: str = "right") -> dict[str, torch.Tensor]:
    """Token-id lists of any lengths -> ``input_ids`` (B, T) padded with ``pad_id`` to the longest and
    ``attention_mask`` (B, T), 1 on the tokens and 0 on the padding; ``side`` is "right" or "left"."""
    if not isinstance(sequences, (list, tuple)) or not sequences:
        raise ValueError(f"sequences must be a non-empty list of token-id lists, got {sequences!r:.80}")
    rows = []
    for s in sequences:
        if isinstance(s, (str, bytes)) or not isinstance(s, (list, tuple, torch.Tensor)) or len(s) == 0 or \
                not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in
                        (s.tolist() if isinstance(s, torch.Tensor) else s)):
            raise ValueError(f"each sequence must be a non-empty list of token ids (ints >= 0), got {s!r:.80}")
        rows.append(s.tolist() if isinstance(s, torch.Tensor) else list(s))
    if isinstance(pad_id, bool) or not isinstance(pad_id, int) or pad_id < 0:
        raise ValueError(f"pad_id must be a token id (an integer >= 0), got {pad_id!r}")
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    T = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, r in enumerate(rows):
        cols = slice(0, len(r)) if side == "right" else slice(T - len(r), T)
        input_ids[i, cols] = torch.tensor(r)
        attention_mask[i, cols] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


class SequenceClassifier(nn.Module):
    """A ``transformers`` base model (e.g. ``LlamaForCausalLM(...).model``, hidden states out) read at the
    last real token, then a linear head ``score``: (B, T) token ids -> (B, n_classes) logits.

    ``score`` is ``nn.Linear(hidden_size, n_classes, bias=False)``, named and shaped as in
    ``LlamaForSequenceClassification``. ``body`` is used as it is (not copied): freeze what should not train."""

    def __init__(self, body: nn.Module, n_classes: int):
        super().__init__()
        if not isinstance(body, nn.Module):
            raise TypeError(f"body must be a torch.nn.Module (a transformers base model), got {type(body).__name__}")
        hidden = getattr(getattr(body, "config", None), "hidden_size", None)
        if not isinstance(hidden, int):
            raise TypeError("body must be a transformers base model with config.hidden_size (e.g. model.model of a "
                            f"LlamaForCausalLM), got {type(body).__name__}")
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        self.body = body
        weight = next((p for p in body.parameters()), None)
        self.score = nn.Linear(hidden, n_classes, bias=False,
                               dtype=weight.dtype if weight is not None else None,
                               device=weight.device if weight is not None else None)

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Either ``input_ids`` (B, T) or ``inputs_embeds`` (B, T, d) (hidden states to feed the body
        directly), with ``attention_mask`` (B, T). Returns the logits (B, n_classes)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give either input_ids or inputs_embeds, not both and not neither")
        x = input_ids if input_ids is not None else inputs_embeds
        if input_ids is not None and (not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2
                                      or input_ids.dtype not in (torch.int64, torch.int32)):
            raise ValueError(f"input_ids must be a (batch, time) integer tensor, got {_describe(input_ids)}")
        if inputs_embeds is not None and (not isinstance(inputs_embeds, torch.Tensor) or inputs_embeds.dim() != 3
                                          or not inputs_embeds.is_floating_point()):
            raise ValueError(f"inputs_embeds must be a (batch, time, dim) float tensor, got {_describe(inputs_embeds)}")
        if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != x.shape[:2]:
            raise ValueError(f"attention_mask must be a (batch, time) tensor of the inputs' shape {tuple(x.shape[:2])}, "
                             f"got {_describe(attention_mask)}")
        hidden = self.body(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                           position_ids=position_ids(attention_mask), use_cache=False).last_hidden_state  # (B, T, d)
        return self.score(pool_last(hidden, attention_mask))  # (B, n_classes)


def classification_loss(model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean cross-entropy of ``model(input_ids, attention_mask)`` against ``batch["labels"]`` (B,), and the
    batch's accuracy as a metric: the ``loss_fn`` of ``llmfs.finetune.trainer.finetune``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (e.g. a SequenceClassifier), got {type(model).__name__}")
    if not isinstance(batch, dict) or not {"input_ids", "attention_mask", "labels"} <= set(batch):
        raise ValueError(f"batch must be a dict with input_ids, attention_mask and labels, got {batch!r:.80}")
    labels = batch["labels"]
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.long or labels.shape != batch["input_ids"].shape[:1]:
        raise ValueError(f"labels must be an int64 tensor (batch,), got {_describe(labels)}")
    logits = model(batch["input_ids"], batch["attention_mask"])  # (B, C)
    loss = F.cross_entropy(logits.float(), labels)
    return loss, {"acc": (logits.argmax(-1) == labels).float().mean().item()}


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (N, C), labels (N,)) of ``model`` over ``batches`` (dicts as for ``classification_loss``),
    in eval mode, on the model's device; the model's train/eval mode is restored afterwards."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(batches, dict) or not isinstance(batches, Iterable):
        raise TypeError(f"batches must be an iterable of batch dicts, got {type(batches).__name__}")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    logits, labels = [], []
    try:
        for b in batches:
            if not isinstance(b, dict) or not {"input_ids", "attention_mask", "labels"} <= set(b):
                raise ValueError(f"each batch must be a dict with input_ids, attention_mask and labels, got {b!r:.80}")
            logits.append(model(b["input_ids"].to(device), b["attention_mask"].to(device)).float().cpu())
            labels.append(b["labels"].cpu())
    finally:
        model.train(was_training)
    if not logits:
        raise ValueError("batches is empty")
    return torch.cat(logits), torch.cat(labels)
