import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from llmfs.pretrain.positions import sinusoidal_positions
from llmfs.pretrain.seq2seq import DecoderLayer, EncoderLayer, Transformer, beam_search, greedy_decode, load_torch_layer


def test_sinusoidal_positions_follow_the_paper():
    pe = sinusoidal_positions(50, 16)
    for pos, i in [(0, 0), (7, 0), (7, 3), (49, 7)]:
        angle = pos / 10000 ** (2 * i / 16)
        assert math.isclose(pe[pos, 2 * i].item(), math.sin(angle), abs_tol=1e-5)
        assert math.isclose(pe[pos, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-5)
    with pytest.raises(ValueError):
        sinusoidal_positions(4, 3)


def test_layers_equal_torch_transformer_layers_with_copied_weights():
    torch.manual_seed(0)
    x, mem = torch.randn(2, 7, 32), torch.randn(2, 5, 32)
    ref = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True).eval()
    ours = load_torch_layer(EncoderLayer(32, 4, 64), ref).eval()
    pad = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])  # torch: True = padding
    with torch.no_grad():
        assert (ours(x, ~pad[:, None, None, :]) - ref(x, src_key_padding_mask=pad)).abs().max() < 1e-5
    ref = nn.TransformerDecoderLayer(32, 4, 64, dropout=0.1, batch_first=True).eval()
    ours = load_torch_layer(DecoderLayer(32, 4, 64), ref).eval()
    causal = torch.ones(7, 7, dtype=torch.bool).tril()
    with torch.no_grad():
        expected = ref(x, mem, tgt_mask=~causal)
        assert (ours(x, mem, causal) - expected).abs().max() < 1e-5


def tiny_model(**kw) -> Transformer:
    torch.manual_seed(0)
    return Transformer(src_vocab=11, tgt_vocab=9, d_model=32, n_heads=4, n_layers=2, d_ff=64, **kw).eval()


def test_decoder_is_causal_and_source_padding_is_ignored():
    model = tiny_model()
    src = torch.tensor([[3, 4, 5, 6]])
    tgt = torch.tensor([[1, 5, 6, 7]])
    with torch.no_grad():
        logits = model(src, tgt)
        assert logits.shape == (1, 4, 9)
        changed = model(src, torch.tensor([[1, 5, 8, 8]]))  # change the future of position 1
        assert (logits[:, :2] - changed[:, :2]).abs().max() < 1e-5
        assert (logits[:, 2:] - changed[:, 2:]).abs().max() > 1e-3
        padded = model(torch.tensor([[3, 4, 5, 6, 0, 0]]), tgt)  # pad_id = 0
        assert (logits - padded).abs().max() < 1e-5


def _logprob(model, src_row, toks, bos=1, eos=2):
    """log p(toks + <eos> | src) by one teacher-forced pass."""
    ys = torch.tensor([[bos] + toks + [eos]])
    logp = model(src_row[None], ys[:, :-1]).log_softmax(-1)[0]
    return logp.gather(1, ys[0, 1:, None]).sum().item()


@torch.no_grad()
def test_a_beam_of_one_is_never_less_likely_than_greedy_and_decoders_stop_at_eos():
    """A beam of 1 follows greedy's path but keeps an <eos> it set aside: it may return a different,
    more likely sentence, never a less likely one (it is not 'equal to greedy')."""
    model = tiny_model()
    src = torch.randint(3, 11, (6, 5))
    greedy = greedy_decode(model, src, bos_token_id=1, eos_token_id=2, max_new_tokens=8)
    assert len(greedy) == 6 and all(2 not in g and 1 <= len(g) + 1 <= 9 for g in greedy)
    beam1 = beam_search(model, src, bos_token_id=1, eos_token_id=2, max_new_tokens=8, num_beams=1)
    for s, b, g in zip(src, beam1, greedy):
        if len(g) < 8:  # greedy ended with <eos> within the budget
            assert _logprob(model, s, b) >= _logprob(model, s, g) - 1e-4


def test_decoders_refuse_bad_arguments():
    model = tiny_model()
    src = torch.randint(3, 11, (2, 5))
    for bad in (dict(max_new_tokens=0), dict(eos_token_id=-1), dict(max_new_tokens=2.5)):
        kwargs = dict(bos_token_id=1, eos_token_id=2, max_new_tokens=8) | bad
        with pytest.raises(ValueError):
            greedy_decode(model, src, **kwargs)
    with pytest.raises(ValueError, match="num_beams"):
        beam_search(model, src, 1, 2, 8, num_beams=0)
    with pytest.raises(ValueError, match="src"):
        greedy_decode(model, src.float(), 1, 2, 8)


class Lookahead:
    """A fake model whose next-token probabilities depend on the last token only. BOS=0, EOS=1.
    From BOS: A (0.6) or B (0.4). After A: EOS 0.34, A 0.33, B 0.33. After B: EOS 1.0.
    Greedy picks A then EOS (p = 0.204); the best sequence is B, EOS (p = 0.4)."""

    table = {0: [0, 0, 0.6, 0.4], 2: [0, 0.34, 0.33, 0.33], 3: [0, 1.0, 0, 0]}

    def encode(self, src):
        return torch.zeros(src.size(0), 1, 1), torch.ones(src.size(0), 1, 1, 1, dtype=torch.bool)

    def decode(self, tgt, memory, mask):
        probs = torch.tensor([self.table[t] for t in tgt[:, -1].tolist()]) + 1e-9
        return probs.log()[:, None, :].expand(-1, tgt.size(1), -1)


def test_beam_search_finds_the_sequence_greedy_misses():
    src = torch.zeros(1, 1, dtype=torch.long)
    assert greedy_decode(Lookahead(), src, bos_token_id=0, eos_token_id=1, max_new_tokens=5) == [[2]]
    assert beam_search(Lookahead(), src, bos_token_id=0, eos_token_id=1, max_new_tokens=5, num_beams=2) == [[3]]


def test_a_tiny_transformer_learns_to_reverse():
    torch.manual_seed(0)
    model = Transformer(src_vocab=8, tgt_vocab=8, d_model=32, n_heads=2, n_layers=1, d_ff=64, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        src = torch.randint(3, 8, (64, 4))
        tgt = torch.cat([torch.ones(64, 1, dtype=torch.long), src.flip(1), torch.full((64, 1), 2)], 1)
        loss = F.cross_entropy(model(src, tgt[:, :-1]).flatten(0, 1), tgt[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    src = torch.randint(3, 8, (100, 4))
    out = greedy_decode(model, src, bos_token_id=1, eos_token_id=2, max_new_tokens=6)
    assert sum(o == s.flip(0).tolist() for o, s in zip(out, src)) >= 90
