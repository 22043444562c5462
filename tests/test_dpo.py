"""llmfs.finetune.dpo: DPO's sigmoid loss and response log-probabilities, equal to trl 1.16.

trl 1.16 has no stand-alone DPO loss function: the loss is computed inside ``DPOTrainer._compute_loss``
(a method that also runs the models and logs metrics). We call that method itself, unbound, on a small
stand-in for the trainer that holds the attributes it reads (taken from a default ``DPOConfig``) and
on models patched with trl's own fused LM head (``add_fused_lm_head``), as ``DPOTrainer.__init__`` does.
So the numbers below come from trl's code, not from a copy of it; only the trainer object is stood in for.
"""

from __future__ import annotations

import math
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llmfs.finetune.dpo import dpo_loss, sequence_logps

BETA = 0.1
VOCAB = 64


def tiny_llama(seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=32)
    return LlamaForCausalLM(cfg).eval()


class _Accelerator:
    """What ``_compute_loss`` asks of accelerate on one process: the device, and gathers that return their input."""

    device = torch.device("cpu")

    @staticmethod
    def gather(t):
        return t

    gather_for_metrics = gather


def trl_compute_loss(model, ref_model, inputs: dict, beta: float) -> tuple[torch.Tensor, dict]:
    """(loss, logged metrics) of trl's ``DPOTrainer._compute_loss`` with a default DPOConfig."""
    from trl import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    args = DPOConfig(output_dir="unused", report_to=[], bf16=False, beta=beta, precompute_ref_log_probs=ref_model is None)
    assert args.loss_type == ["sigmoid"] and args.f_divergence_type == "reverse_kl"  # the defaults: plain DPO
    trainer = SimpleNamespace(
        model=model, ref_model=ref_model, accelerator=_Accelerator(), args=args, beta=args.beta,
        precompute_ref_logps=args.precompute_ref_log_probs, loss_types=args.loss_type,
        loss_weights=args.loss_weights or [1.0], ld_alpha=args.ld_alpha, f_divergence_type=args.f_divergence_type,
        label_smoothing=args.label_smoothing, use_weighting=args.use_weighting, aux_loss_enabled=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, _total_train_tokens=0, _tp_size=1,
    )
    loss = DPOTrainer._compute_loss(trainer, model, inputs, return_outputs=False)
    return loss, trainer._metrics["train" if model.training else "eval"]


class _GivenLogps(torch.nn.Module):
    """A stand-in policy whose fused-head output carries the given per-sequence log-probabilities."""

    def __init__(self, logps: torch.Tensor):
        super().__init__()
        self.logps = logps  # (2B,) chosen first, then rejected

    def forward(self, input_ids, labels=None, fused_lm_head=False, **kwargs):
        zeros = torch.zeros(len(self.logps), 1)
        return SimpleNamespace(log_probs=self.logps[:, None], entropy=zeros, mean_logits=zeros, is_top1=zeros.bool())


def random_logps(n: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(-torch.rand(n, generator=g, dtype=torch.float32) * 50 for _ in range(4))  # (n,) each, in (-50, 0]


def test_equal_policy_and_reference_give_ln2():
    pc, pr, _, _ = random_logps(6, 0)
    losses, chosen, rejected = dpo_loss(pc, pr, pc.clone(), pr.clone(), beta=BETA)
    assert torch.allclose(losses, torch.full((6,), math.log(2)), atol=1e-7, rtol=0), "at policy = reference the loss is ln 2"
    assert torch.equal(chosen, torch.zeros(6)) and torch.equal(rejected, torch.zeros(6))


def test_loss_by_hand_and_rewards_detached():
    pc, pr, rc, rr = (t.requires_grad_() for t in random_logps(5, 1))
    losses, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=0.5)
    margin = 0.5 * ((pc - rc) - (pr - rr))
    assert torch.allclose(losses, torch.log1p(torch.exp(-margin)), atol=1e-6)  # -log sigmoid(m) = log(1 + e^-m)
    assert torch.allclose(chosen, 0.5 * (pc - rc)) and torch.allclose(rejected, 0.5 * (pr - rr))
    assert losses.requires_grad and not chosen.requires_grad and not rejected.requires_grad


@pytest.mark.parametrize("margin", [1e4, -1e4, 1e6, -1e6, 0.0])
def test_finite_at_extreme_margins(margin):
    """log(sigmoid(-1e4 * beta)) would be log(0) = -inf; logsigmoid gives the finite 1e3."""
    pc = torch.tensor([margin / BETA], requires_grad=True)
    zero = torch.zeros(1)
    losses, _, _ = dpo_loss(pc, zero, zero, zero, beta=BETA)
    losses.sum().backward()
    assert torch.isfinite(losses).all() and torch.isfinite(pc.grad).all()
    expected = max(-margin, 0.0) + math.log1p(math.exp(-abs(margin)))  # softplus(-margin), computed stably
    assert math.isclose(losses.item(), expected, rel_tol=1e-6, abs_tol=1e-7)
    assert math.isclose(pc.grad.item(), -BETA / (1 + math.exp(min(margin, 700))), rel_tol=1e-5, abs_tol=1e-12)


def test_dpo_loss_equals_trl_per_example():
    """Pair by pair (trl returns the batch mean), including margins of +-1e4 and +-1e-3."""
    pc, pr, rc, rr = random_logps(6, 2)
    pc[0], rc[0], pr[0], rr[0] = -1.0, -1.0 - 1e4 / BETA / 2, -1.0 - 1e4 / BETA / 2, -1.0  # margin +1e4 (beta * delta)
    pc[1], rc[1], pr[1], rr[1] = -1e4 / BETA, 0.0, 0.0, 0.0  # margin -1e4
    pc[2], rc[2], pr[2], rr[2] = -3.0, -3.0, -2.0, -2.0 - 1e-2  # margin -1e-3
    losses, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=BETA)
    assert torch.isfinite(losses).all()
    for i in range(6):
        inputs = {
            "input_ids": torch.zeros(2, 2, dtype=torch.long), "attention_mask": torch.ones(2, 2, dtype=torch.long),
            "completion_mask": torch.ones(2, 2, dtype=torch.long),
            "ref_chosen_logps": rc[i:i + 1], "ref_rejected_logps": rr[i:i + 1],
        }
        loss, metrics = trl_compute_loss(_GivenLogps(torch.stack([pc[i], pr[i]])), None, inputs, BETA)
        assert loss.item() == losses[i].item(), f"pair {i}: ours {losses[i].item()} trl {loss.item()}"
        assert metrics["rewards/chosen"] == [chosen[i].item()] and metrics["rewards/rejected"] == [rejected[i].item()]
        assert metrics["rewards/margins"] == [(chosen[i] - rejected[i]).item()]


def make_batch(seed: int, B: int = 3, T: int = 12) -> dict:
    """B preference pairs as trl's collator lays them out: the B chosen rows, then the B rejected ones, right-padded;
    completion_mask marks the response tokens (prompts of 4 tokens, responses of different lengths)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (2 * B, T), generator=g)
    lengths = torch.randint(7, T + 1, (2 * B,), generator=g)
    attention = (torch.arange(T)[None] < lengths[:, None]).long()
    completion = attention.clone()
    completion[:, :4] = 0
    return {"input_ids": ids * attention, "attention_mask": attention, "completion_mask": completion}


def ours_from_models(policy, ref, batch: dict, beta: float):
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    logps = sequence_logps(policy(batch["input_ids"], attention_mask=batch["attention_mask"]).logits, labels)
    with torch.no_grad():
        ref_logps = sequence_logps(ref(batch["input_ids"], attention_mask=batch["attention_mask"]).logits, labels)
    B = len(logps) // 2
    return dpo_loss(logps[:B], logps[B:], ref_logps[:B], ref_logps[B:], beta)


def test_sequence_logps_equals_trl_fused_head():
    """Our shifted, masked sum of log-softmax equals the per-token log-probs of trl's chunked fused LM head."""
    from trl.trainer.utils import add_fused_lm_head

    model, batch = tiny_llama(0), make_batch(3)
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    with torch.no_grad():
        ours = sequence_logps(model(batch["input_ids"], attention_mask=batch["attention_mask"]).logits, labels)
        add_fused_lm_head(model)
        theirs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                       fused_lm_head=True).log_probs.sum(dim=1)
    assert (ours - theirs).abs().max() < 1e-5, f"max |diff| {(ours - theirs).abs().max():.3g}"


def test_end_to_end_equals_trl_dpo_trainer_loss():
    """Two different tiny Llamas (policy, reference) on one batch: trl's loss and reward metrics = ours."""
    from trl.trainer.utils import add_fused_lm_head

    policy, ref, batch = tiny_llama(0), tiny_llama(1), make_batch(4)
    losses, chosen, rejected = ours_from_models(policy, ref, batch, BETA)
    add_fused_lm_head(policy, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))  # as DPOTrainer.__init__
    add_fused_lm_head(ref)
    with torch.no_grad():
        loss, metrics = trl_compute_loss(policy, ref, batch, BETA)
    assert abs(loss.item() - losses.mean().item()) < 1e-6
    assert abs(metrics["rewards/chosen"][0] - chosen.mean().item()) < 1e-6
    assert abs(metrics["rewards/rejected"][0] - rejected.mean().item()) < 1e-6


def test_sequence_logps_by_hand():
    logits = torch.randn(1, 4, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([[-100, -100, 3, 1]])  # the prompt is 2 tokens; positions 1 and 2 predict tokens 3 and 1
    logp = logits.log_softmax(-1)
    assert torch.allclose(sequence_logps(logits, labels), logp[0, 1, 3] + logp[0, 2, 1])
    assert sequence_logps(logits, torch.full((1, 4), -100)).item() == 0.0  # nothing to score: 0


@pytest.mark.parametrize("call,error,message", [
    (lambda: dpo_loss(torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(2), 0.1), ValueError, "one shape"),
    (lambda: dpo_loss(torch.zeros(2, 1), torch.zeros(2), torch.zeros(2), torch.zeros(2), 0.1), ValueError,
     r"policy_chosen_logps must be a \(batch,\) float tensor"),
    (lambda: dpo_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.zeros(2), 0), ValueError, "beta must be"),
    (lambda: dpo_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.zeros(2), float("nan")), ValueError, "beta"),
    (lambda: dpo_loss(torch.tensor([float("nan")]), torch.zeros(1), torch.zeros(1), torch.zeros(1), 0.1), ValueError,
     "NaN or infinite"),
    (lambda: dpo_loss([0.0], torch.zeros(1), torch.zeros(1), torch.zeros(1), 0.1), ValueError, "got list"),
    (lambda: sequence_logps(torch.zeros(1, 4, 5), torch.zeros(1, 3, dtype=torch.long)), ValueError, r"labels must be"),
    (lambda: sequence_logps(torch.zeros(1, 4, 5), torch.full((1, 4), 7)), ValueError, r"token ids in 0..4"),
    (lambda: sequence_logps(torch.zeros(4, 5), torch.zeros(4, dtype=torch.long)), ValueError, r"logits must be"),
    (lambda: sequence_logps(torch.zeros(1, 4, 5), torch.zeros(1, 4, dtype=torch.long), ignore_index=None), TypeError,
     "ignore_index"),
])
def test_bad_input_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()
