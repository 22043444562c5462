"""llmfs.finetune.classify: the last real token, padding on either side, a head equal to transformers'
LlamaForSequenceClassification, the classification loss in the fine-tuning loop, and clear errors.

A tiny random transformers Llama (hidden 32, 2 layers) stands in for SmolLM2.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from llmfs.finetune.classify import (
    SequenceClassifier,
    classification_loss,
    last_token_index,
    pad_batch,
    pool_last,
    position_ids,
    predict,
)
from llmfs.finetune.trainer import FinetuneConfig, finetune

PAD = 0
VOCAB = 50


def tiny_llama(attn: str = "sdpa", seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=PAD, attn_implementation=attn)
    return LlamaForCausalLM(config).eval()


SEQS = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]  # no pad id (0) inside the texts


def test_last_token_index_right_and_left_padding():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert last_token_index(mask).tolist() == [2, 4, 4, 4]
    assert last_token_index(mask.bool()).tolist() == [2, 4, 4, 4]


def test_pool_last_reads_the_vector_of_the_last_real_token():
    hidden = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]])
    pooled = pool_last(hidden, mask)
    assert torch.equal(pooled[0], hidden[0, 1]) and torch.equal(pooled[1], hidden[1, 3])


def test_position_ids_count_real_tokens_from_zero():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1]])
    assert position_ids(mask).tolist() == [[0, 1, 2, 0, 0], [0, 0, 0, 1, 2]]


@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_batch(side):
    b = pad_batch(SEQS, pad_id=PAD, side=side)
    assert b["input_ids"].shape == b["attention_mask"].shape == (3, 5)
    for row, s in enumerate(SEQS):
        ids, mask = b["input_ids"][row], b["attention_mask"][row]
        assert ids[mask.bool()].tolist() == s and (ids[~mask.bool()] == PAD).all()
        real = mask.nonzero().flatten()
        assert real[0] == (0 if side == "right" else 5 - len(s))  # contiguous on its side
        assert real.tolist() == list(range(real[0], real[0] + len(s)))


@pytest.fixture(scope="module")
def lm():
    return tiny_llama()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_logits_do_not_depend_on_padding(attn):
    clf = SequenceClassifier(tiny_llama(attn).model, n_classes=3).eval()
    with torch.no_grad():
        alone = torch.cat([clf(torch.tensor([s]), torch.ones(1, len(s), dtype=torch.long)) for s in SEQS])
        for side in ("right", "left"):
            for extra in (0, 7):  # a longer row in the batch adds padding to every other row
                batch = pad_batch(SEQS + [[3] * (5 + extra)], PAD, side)
                out = clf(**batch)[:3]
                assert torch.allclose(out, alone, atol=1e-5), (side, extra, (out - alone).abs().max())


def test_reading_position_minus_one_depends_on_padding(lm):
    """The bug this module avoids: with right padding, position -1 is a pad token."""
    clf = SequenceClassifier(lm.model, n_classes=2).eval()
    batch = pad_batch(SEQS, PAD, "right")
    with torch.no_grad():
        hidden = lm.model(**batch).last_hidden_state
        naive = clf.score(hidden[:, -1])
        ours = clf(**batch)
    assert torch.allclose(naive[0], ours[0], atol=1e-5)  # the longest row has no padding: same
    assert (naive[1:] - ours[1:]).abs().max() > 1e-3  # the padded rows: different


@pytest.mark.parametrize("side", ["right", "left"])
def test_equal_to_transformers_sequence_classification(lm, side):
    clf = SequenceClassifier(lm.model, n_classes=2).eval()
    hf = LlamaForSequenceClassification(copy.deepcopy(lm.config)).eval()
    hf.config.num_labels = 2
    hf.model.load_state_dict(lm.model.state_dict())
    hf.score.load_state_dict(clf.score.state_dict())
    batch = pad_batch(SEQS, PAD, side)
    labels = torch.tensor([0, 1, 1])
    with torch.no_grad():
        theirs = hf(**batch, position_ids=position_ids(batch["attention_mask"]), labels=labels)
        ours = clf(**batch)
        loss, metrics = classification_loss(clf, {**batch, "labels": labels})
    assert torch.allclose(ours, theirs.logits, atol=1e-6)
    assert torch.allclose(loss, theirs.loss, atol=1e-6)
    assert torch.allclose(loss, F.cross_entropy(ours, labels))
    assert metrics["acc"] == (ours.argmax(-1) == labels).float().mean().item()


def test_inputs_embeds_path_equals_input_ids(lm):
    clf = SequenceClassifier(lm.model, n_classes=2).eval()
    batch = pad_batch(SEQS, PAD, "left")
    with torch.no_grad():
        assert torch.allclose(clf(inputs_embeds=lm.model.embed_tokens(batch["input_ids"]),
                                  attention_mask=batch["attention_mask"]), clf(**batch), atol=1e-6)


def test_finetune_with_classification_loss_learns_a_simple_rule():
    """Class = whether token 7 occurs in the text: full fine-tuning of the tiny model learns it."""
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(6):
        seqs, labels = [], []
        for _ in range(8):
            n = int(torch.randint(3, 9, (1,), generator=g))
            s = torch.randint(8, VOCAB, (n,), generator=g).tolist()
            y = int(torch.rand(1, generator=g) < 0.5)
            if y:
                s[int(torch.randint(0, n, (1,), generator=g))] = 7
            seqs.append(s)
            labels.append(y)
        batches.append({**pad_batch(seqs, PAD, "right"), "labels": torch.tensor(labels)})
    clf = SequenceClassifier(tiny_llama(seed=1).model, n_classes=2)
    before = classification_loss(clf.eval(), batches[0])[0].item()
    history = finetune(clf, batches, classification_loss, FinetuneConfig(max_steps=60, lr=3e-3, warmup_steps=5),
                       quiet=True)
    logits, labels = predict(clf, batches)
    assert clf.training  # finetune leaves the model in training mode, and predict restores it
    assert logits.shape == (48, 2) and labels.shape == (48,)
    assert "acc" in history and history["train_loss"][-1] < 0.5 * before
    assert (logits.argmax(-1) == labels).float().mean() > 0.9


def test_predict_restores_training_mode(lm):
    clf = SequenceClassifier(copy.deepcopy(lm.model), n_classes=2).train()
    predict(clf, [{**pad_batch(SEQS, PAD), "labels": torch.tensor([0, 1, 0])}])
    assert clf.training


BAD = [
    (last_token_index, dict(attention_mask=torch.tensor([[1, 1], [0, 0]])), ValueError, "all 0"),
    (last_token_index, dict(attention_mask=torch.ones(2, 3)), ValueError, "integer or bool"),
    (last_token_index, dict(attention_mask=torch.ones(3, dtype=torch.long)), ValueError, "(batch, time)"),
    (last_token_index, dict(attention_mask=torch.full((1, 3), 2)), ValueError, "only 0"),
    (last_token_index, dict(attention_mask=[[1, 1]]), ValueError, "(batch, time)"),
    (pool_last, dict(hidden=torch.randn(2, 3), attention_mask=torch.ones(2, 3, dtype=torch.long)), ValueError, "hidden"),
    (pool_last, dict(hidden=torch.randn(2, 3, 4), attention_mask=torch.ones(2, 4, dtype=torch.long)), ValueError, "match"),
    (position_ids, dict(attention_mask=None), ValueError, "attention_mask"),
    (pad_batch, dict(sequences=[], pad_id=0), ValueError, "non-empty"),
    (pad_batch, dict(sequences=[[1, 2], []], pad_id=0), ValueError, "non-empty list of token ids"),
    (pad_batch, dict(sequences=["abc"], pad_id=0), ValueError, "token ids"),
    (pad_batch, dict(sequences=[[1, -2]], pad_id=0), ValueError, "token ids"),
    (pad_batch, dict(sequences=[[1.5]], pad_id=0), ValueError, "token ids"),
    (pad_batch, dict(sequences=[[1]], pad_id=-1), ValueError, "pad_id"),
    (pad_batch, dict(sequences=[[1]], pad_id=True), ValueError, "pad_id"),
    (pad_batch, dict(sequences=[[1]], pad_id=0, side="middle"), ValueError, "side"),
    (SequenceClassifier, dict(body=nn.Linear(2, 2), n_classes=2), TypeError, "hidden_size"),
    (SequenceClassifier, dict(body="body", n_classes=2), TypeError, "torch.nn.Module"),
    (classification_loss, dict(model="m", batch={}), TypeError, "torch.nn.Module"),
    (classification_loss, dict(model=nn.Linear(2, 2), batch={"input_ids": 1}), ValueError, "labels"),
    (predict, dict(model=nn.Linear(2, 2), batches={"a": 1}), TypeError, "iterable"),
    (predict, dict(model=None, batches=[]), TypeError, "torch.nn.Module"),
]


@pytest.mark.parametrize("call, kwargs, error, message", BAD, ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(BAD)])
def test_bad_input_raises_a_clear_error(call, kwargs, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(**kwargs)


def test_bad_model_inputs_raise_clear_errors(lm):
    clf = SequenceClassifier(lm.model, n_classes=2)
    mask = torch.ones(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="n_classes"):
        SequenceClassifier(lm.model, n_classes=1)
    with pytest.raises(ValueError, match="either input_ids or inputs_embeds"):
        clf(attention_mask=mask)
    with pytest.raises(ValueError, match="input_ids must be"):
        clf(torch.ones(1, 3), mask)
    with pytest.raises(ValueError, match="attention_mask must be"):
        clf(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must be"):
        classification_loss(clf, {**pad_batch([[1, 2]], PAD), "labels": torch.tensor([0.0])})
    with pytest.raises(ValueError, match="each batch"):
        predict(clf, [{"input_ids": 1}])
