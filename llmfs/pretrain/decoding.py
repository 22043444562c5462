"""Decoding: from next-token logits to text. Greedy, sampling (temperature, top-k, top-p), repetition
penalty and beam search, each written to give the same tokens as ``transformers``' ``generate``.

    ids = greedy(model, prompt, max_new_tokens=50)
    ids = sample(model, prompt, 50, temperature=0.8, top_k=40, top_p=0.95, repetition_penalty=1.2)
    ids = beam_search(model, prompt, 50, num_beams=4, eos_token_id=0)

``model`` is any callable from token ids (B, T) to logits (B, T, V): ``llmfs.pretrain.gpt.GPT``, or
``lambda ids: hf_model(ids).logits``. ``prompt`` is (B, T) int64 (beam search: B = 1). Every step
recomputes the whole sequence (no KV cache: that is the inference series' subject); the context is cut
to the model's ``block_size`` when it has one.

Every argument is checked, even one the chosen decoder ignores (``temperature`` when greedy): a wrong
type raises ``TypeError``, a wrong value ``ValueError``. ``max_new_tokens`` is at least 1 (as in
``transformers``); ``top_k`` None or 0 means no top-k filter, ``top_p`` None or 1.0 no nucleus filter.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
import torch.nn.functional as F

Model = Callable[[torch.Tensor], torch.Tensor]


def _check(name: str, value, expected: str, ok=lambda v: True, kind=numbers.Real) -> None:
    """A TypeError unless ``value`` is a ``kind`` (a bool never counts as a number), a ValueError unless
    ``ok(value)``; both say "{name} must be {expected}, got ..." with the tensor's shape and dtype."""
    got = (f"shape {tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}" if isinstance(value, torch.Tensor)
           else repr(value)[:80])
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {got}")
    if not ok(value):
        raise ValueError(f"{name} must be {expected}, got {got}")


def _check_ids(ids: torch.Tensor, logits: torch.Tensor | None = None) -> None:
    """ids (B, T) int64 >= 0 and, if given, logits (B, V) float on the same device with every id < V."""
    _check("ids", ids, "a (batch, time) int64 tensor of token ids", kind=torch.Tensor,
           ok=lambda t: t.dim() == 2 and t.dtype == torch.long and t.numel() > 0 and t.min() >= 0)
    if logits is not None:
        _check("logits", logits, f"a ({ids.size(0)}, vocab) float tensor like ids, on {ids.device}", kind=torch.Tensor,
               ok=lambda t: t.dim() == 2 and t.size(0) == ids.size(0) and t.size(1) > 0 and t.is_floating_point()
               and t.device == ids.device)
        if ids.max() >= logits.size(1):
            raise ValueError(f"ids holds token {int(ids.max())}, out of range for {logits.size(1)} logits")


# ---------------------------------------------------------------------------------------- logits processors
# Each takes logits (B, V) and returns new logits (B, V); a removed token gets -inf.


def apply_repetition_penalty(logits: torch.Tensor, ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's penalty (Keskar et al., 2019) on every token already in ``ids`` (B, T): a positive logit is
    divided by ``penalty``, a negative one multiplied, so the token always becomes less likely."""
    _check_ids(ids, logits)
    _check("penalty", penalty, "a number > 0 (1.0: no penalty)", lambda p: 0 < p < math.inf)
    seen = torch.gather(logits, 1, ids)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(1, ids, seen)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row (and any tied with the k-th)."""
    _check("logits", logits, "a (batch, vocab) float tensor", kind=torch.Tensor,
           ok=lambda t: t.dim() == 2 and t.size(1) > 0 and t.is_floating_point())
    _check("k", k, "an integer >= 1", lambda k: k >= 1, numbers.Integral)
    kth = torch.topk(logits, min(k, logits.size(-1))).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter (Holtzman et al., 2020): keep the smallest set of most likely tokens whose
    probabilities sum to at least ``p``; the most likely token is always kept."""
    _check("logits", logits, "a (batch, vocab) float tensor", kind=torch.Tensor,
           ok=lambda t: t.dim() == 2 and t.size(1) > 0 and t.is_floating_point())
    _check("p", p, "a number in (0, 1]", lambda p: 0 < p <= 1)
    sorted_logits, order = torch.sort(logits, descending=False)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)  # ascending: the tail's mass comes first
    remove = cum <= (1 - p)  # the unlikely tail whose total mass is at most 1 - p
    remove[..., -1] = False
    return logits.masked_fill(remove.scatter(1, order, remove), float("-inf"))


def process_logits(logits: torch.Tensor, ids: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None, repetition_penalty: float = 1.0) -> torch.Tensor:
    """The processors in ``transformers``' order: repetition penalty, temperature, top-k, top-p."""
    _check_ids(ids, logits)
    _check("temperature", temperature, "a number > 0", lambda t: 0 < t < math.inf)
    if top_k is not None:
        _check("top_k", top_k, "None, 0 (off) or an integer >= 1", lambda k: k >= 0, numbers.Integral)
    if top_p is not None:
        _check("top_p", top_p, "None or a number in (0, 1]", lambda p: 0 < p <= 1)
    _check("repetition_penalty", repetition_penalty, "a number > 0 (1.0: no penalty)", lambda p: 0 < p < math.inf)
    if repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, ids, repetition_penalty)
    if temperature != 1.0:
        logits = logits / temperature
    if top_k:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    return logits


# ---------------------------------------------------------------------------------------- greedy and sampling


def next_token_logits(model: Model, ids: torch.Tensor) -> torch.Tensor:
    """Logits (B, V) of the token after ``ids`` (B, T), in float32; the context is cut to block_size."""
    _check("model", model, "a callable from ids (B, T) to logits (B, T, V)", kind=Callable)
    _check_ids(ids)
    block_size = getattr(getattr(model, "config", None), "block_size", None)
    if block_size is not None:
        ids = ids[:, -block_size:]
    logits = model(ids)
    _check("model(ids)", logits, f"a ({ids.size(0)}, {ids.size(1)}, vocab) float tensor of logits (for a transformers "
           "model, pass lambda ids: hf_model(ids).logits)", kind=torch.Tensor,
           ok=lambda t: t.dim() == 3 and t.shape[:2] == ids.shape and t.is_floating_point())
    return logits[:, -1, :].float()


@torch.no_grad()
def generate(model: Model, ids: torch.Tensor, max_new_tokens: int, do_sample: bool = False,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             repetition_penalty: float = 1.0, eos_token_id: int | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Append up to ``max_new_tokens`` tokens to ``ids`` (B, T) -> (B, T + n).

    Greedy (``do_sample=False``) takes the argmax of the processed logits; sampling draws from their
    softmax. A row that emits ``eos_token_id`` is finished: it is padded with eos until every row is.
    """
    _check_ids(ids)
    _check("max_new_tokens", max_new_tokens, "an integer >= 1", lambda n: n >= 1, numbers.Integral)
    _check("do_sample", do_sample, "True or False", kind=bool)
    process_logits(torch.zeros(1, 1), torch.zeros(1, 1, dtype=torch.long),  # a dry run that checks the options
                   temperature, top_k, top_p, repetition_penalty)
    if eos_token_id is not None:
        _check("eos_token_id", eos_token_id, "None or an integer >= 0", lambda e: e >= 0, numbers.Integral)
    if generator is not None:
        _check("generator", generator, f"None or a torch.Generator on {ids.device.type}", kind=torch.Generator,
               ok=lambda g: g.device.type == ids.device.type)
    unfinished = torch.ones(ids.size(0), dtype=torch.bool, device=ids.device)
    for _ in range(max_new_tokens):
        logits = process_logits(next_token_logits(model, ids), ids, temperature if do_sample else 1.0,
                                top_k if do_sample else None, top_p if do_sample else None, repetition_penalty)
        if do_sample:
            nxt = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1, generator=generator).squeeze(1)
        else:
            nxt = logits.argmax(dim=-1)
        if eos_token_id is not None:
            nxt = torch.where(unfinished, nxt, eos_token_id)
            unfinished &= nxt != eos_token_id
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        if not unfinished.any():
            break
    return ids


def greedy(model: Model, ids: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
    """Always the most likely next token (kwargs: repetition_penalty, eos_token_id)."""
    return generate(model, ids, max_new_tokens, do_sample=False, **kwargs)


def sample(model: Model, ids: torch.Tensor, max_new_tokens: int, **kwargs) -> torch.Tensor:
    """Draw each token from the processed distribution (kwargs: temperature, top_k, top_p,
    repetition_penalty, eos_token_id, generator)."""
    return generate(model, ids, max_new_tokens, do_sample=True, **kwargs)


# ---------------------------------------------------------------------------------------- beam search


@torch.no_grad()
def beam_search(model: Model, ids: torch.Tensor, max_new_tokens: int, num_beams: int = 4,
                length_penalty: float = 1.0, eos_token_id: int | None = None,
                early_stopping: bool | str = False) -> torch.Tensor:
    """The most likely continuation found by keeping the ``num_beams`` best partial sequences.

    ids: (1, T) -> (1, T + n). A sequence is scored by its summed log-probability; a finished one
    (it emitted eos, or reached ``max_new_tokens``) by that sum / (generated length) ** length_penalty.
    Stops when no running beam can beat the worst of ``num_beams`` finished ones (``early_stopping``
    False, the default), as soon as ``num_beams`` are finished (True), or never before the end ("never").
    """
    _check_ids(ids)
    if ids.size(0) != 1:
        raise ValueError(f"beam_search decodes one prompt at a time: ids must be (1, T), got shape {tuple(ids.shape)}")
    _check("max_new_tokens", max_new_tokens, "an integer >= 1", lambda n: n >= 1, numbers.Integral)
    _check("num_beams", num_beams, "an integer >= 1", lambda n: n >= 1, numbers.Integral)
    _check("length_penalty", length_penalty, "a finite number", math.isfinite)
    if eos_token_id is not None:
        _check("eos_token_id", eos_token_id, "None or an integer >= 0", lambda e: e >= 0, numbers.Integral)
    if not (isinstance(early_stopping, bool) or isinstance(early_stopping, str) and early_stopping == "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")
    beams = ids.repeat(num_beams, 1)  # (K, T): K copies of the prompt...
    scores = torch.full((num_beams,), -1e9, device=ids.device)
    scores[0] = 0.0  # ...of which only the first is alive, so step 1 does not pick one token K times
    finished: list[tuple[float, torch.Tensor]] = []  # (score, sequence), the best num_beams so far
    for step in range(max_new_tokens):
        length = step + 1  # tokens generated, counting the one chosen now
        logp = F.log_softmax(next_token_logits(model, beams), dim=-1)  # (K, V)
        vocab = logp.size(-1)
        # every (beam, token) continuation, scored; keep 2K so that K survive even if K end in eos
        cand_scores, cand = (scores[:, None] + logp).view(-1).topk(2 * num_beams)
        seqs = torch.cat([beams[cand // vocab], (cand % vocab)[:, None]], dim=1)  # (2K, T + length)
        done = (cand % vocab == eos_token_id) if eos_token_id is not None else torch.zeros_like(cand, dtype=torch.bool)
        if step == max_new_tokens - 1:
            done[:] = True
        for i in range(num_beams):  # only the K best candidates may finish (as in transformers)
            if done[i]:
                finished.append((float(cand_scores[i] / length ** length_penalty), seqs[i]))
        finished = sorted(finished, key=lambda f: -f[0])[:num_beams]
        alive = (~done).nonzero().squeeze(1)[:num_beams]
        if len(alive) == 0:
            break
        beams, scores = seqs[alive], cand_scores[alive]
        if len(finished) == num_beams:
            if early_stopping is True:
                break
            # could the best running beam still beat the worst finished one?
            best_length = max_new_tokens if early_stopping == "never" and length_penalty > 0 else length
            if float(scores[0] / best_length ** length_penalty) <= finished[-1][0]:
                break
    return finished[0][1][None, :]
