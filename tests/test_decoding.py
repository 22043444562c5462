"""Our decoders against transformers' generate on the same weights: the same token ids."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor, TopKLogitsWarper, TopPLogitsWarper

from llmfs.pretrain.decoding import apply_repetition_penalty, beam_search, greedy, sample, top_k_filter, top_p_filter
from llmfs.pretrain.gpt import GPT

EOS = 3


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                    bos_token_id=EOS, eos_token_id=EOS, pad_token_id=EOS)).eval()
    return hf, GPT.from_hf(hf).eval()


PROMPT = torch.tensor([[5, 7, 9]])


def test_processors_equal_transformers():
    torch.manual_seed(0)
    logits, ids = torch.randn(4, 50) * 3, torch.randint(0, 50, (4, 12))
    assert torch.equal(top_k_filter(logits, 7), TopKLogitsWarper(7)(ids, logits))
    for p in (0.1, 0.5, 0.9, 0.99):
        assert torch.equal(top_p_filter(logits, p), TopPLogitsWarper(p)(ids, logits))
    assert torch.equal(apply_repetition_penalty(logits, ids, 1.3),
                       RepetitionPenaltyLogitsProcessor(1.3)(ids, logits.clone()))


def test_filters_keep_what_they_promise():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert torch.isfinite(top_k_filter(logits, 2)).tolist() == [[False, True, True, False]]
    assert torch.isfinite(top_p_filter(logits, 1e-6)).sum() == 1  # the most likely token always survives
    # the penalty lowers a seen token's logit whatever its sign
    out = apply_repetition_penalty(torch.tensor([[2.0, -2.0, 1.0]]), torch.tensor([[0, 1]]), 2.0)
    assert out.tolist() == [[1.0, -4.0, 1.0]]


@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_greedy_equals_generate(models, penalty):
    hf, ours = models
    ref = hf.generate(PROMPT, max_new_tokens=25, do_sample=False, repetition_penalty=penalty)
    assert torch.equal(greedy(ours, PROMPT, 25, repetition_penalty=penalty, eos_token_id=EOS), ref)


@pytest.mark.parametrize("kwargs", [dict(temperature=0.7, top_k=0), dict(top_k=5), dict(top_p=0.8, top_k=0),
                                    dict(temperature=1.3, top_k=10, top_p=0.9, repetition_penalty=1.2)])
def test_sampling_equals_generate_with_the_same_seed(models, kwargs):
    hf, ours = models
    prompts = PROMPT.repeat(3, 1)
    torch.manual_seed(1)
    ref = hf.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=20, do_sample=True, **kwargs)
    torch.manual_seed(1)
    assert torch.equal(sample(ours, prompts, 20, eos_token_id=EOS, **kwargs), ref)


@pytest.mark.parametrize("eos", [None, EOS])
@pytest.mark.parametrize("num_beams,length_penalty,early_stopping",
                         [(2, 1.0, False), (4, 1.0, False), (4, 0.5, True), (3, 2.0, "never")])
def test_beam_search_equals_generate(models, eos, num_beams, length_penalty, early_stopping):
    hf, ours = models
    ref = hf.generate(PROMPT, max_new_tokens=15, num_beams=num_beams, do_sample=False, eos_token_id=eos,
                      length_penalty=length_penalty, early_stopping=early_stopping)
    kw = dict(num_beams=num_beams, length_penalty=length_penalty, eos_token_id=eos, early_stopping=early_stopping)
    assert torch.equal(beam_search(ours, PROMPT, 15, **kw), ref)
    assert torch.equal(beam_search(lambda ids: hf(ids).logits, PROMPT, 15, **kw), ref)


def test_beam_search_beats_greedy_on_log_probability(models):
    _, ours = models

    def logprob(seq):
        lp = torch.log_softmax(ours(seq[:, :-1]), -1)[0, PROMPT.size(1) - 1:]
        return lp.gather(1, seq[0, PROMPT.size(1):, None]).sum().item()

    g, b = greedy(ours, PROMPT, 10), beam_search(ours, PROMPT, 10, num_beams=8)
    assert logprob(b) >= logprob(g) - 1e-5
