import pytest
import torch
from transformers import MixtralConfig
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock, load_balancing_loss_func

from llmfs.pretrain.moe import MoE, expert_capacity, load_balancing_loss, route, within_capacity


@pytest.fixture(scope="module")
def hf_block():
    """A random Mixtral sparse MoE block: 4 SwiGLU experts of width 24 on 16 features, top-2."""
    torch.manual_seed(0)
    config = MixtralConfig(hidden_size=16, intermediate_size=24, num_local_experts=4, num_experts_per_tok=2,
                           experts_implementation="eager")
    block = MixtralSparseMoeBlock(config).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0.0, 0.3)
    return block


def test_route_picks_the_top_k_and_renormalises():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0], [5.0, -1.0, 4.0, 0.0]])
    weights, indices = route(logits, top_k=2)
    assert indices.tolist() == [[1, 3], [0, 2]]
    assert torch.allclose(weights.sum(-1), torch.ones(2))
    p = logits.softmax(-1)
    assert torch.allclose(weights[0], p[0, [1, 3]] / p[0, [1, 3]].sum())


def test_weights_sum_to_one_on_random_logits():
    weights, indices = route(torch.randn(50, 8), top_k=3)
    assert weights.shape == indices.shape == (50, 3)
    assert torch.allclose(weights.sum(-1), torch.ones(50), atol=1e-6)
    assert (weights[:, :-1] >= weights[:, 1:]).all()  # most probable first


def test_block_equals_mixtral(hf_block):
    ours = MoE.from_hf(hf_block).eval()
    x = torch.randn(3, 11, 16)
    with torch.no_grad():
        y, y_hf = ours(x), hf_block(x)
        hf_logits = hf_block.gate(x)[0]
    assert (y - y_hf).abs().max() < 1e-5
    assert (ours.router_logits - hf_logits).abs().max() < 1e-5
    assert ours.load.sum() == 3 * 11 * 2 and ours.dropped.sum() == 0


def test_aux_loss_equals_transformers(hf_block):
    torch.manual_seed(1)
    layers = (torch.randn(40, 4), 3 * torch.randn(25, 4))
    for top_k in (1, 2):
        ours = load_balancing_loss(list(layers), top_k)
        ref = load_balancing_loss_func(layers, num_experts=4, top_k=top_k)
        assert abs(ours.item() - ref.item()) < 1e-6
    balanced = 5 * torch.eye(4).repeat(3, 1)  # each expert is the first choice of 3 of the 12 tokens
    assert load_balancing_loss(balanced, top_k=1).item() == pytest.approx(1.0)  # = top_k
    collapsed = torch.tensor([[20.0, 0.0, 0.0, 0.0]]).repeat(12, 1)  # every token to expert 0
    assert load_balancing_loss(collapsed, top_k=1).item() == pytest.approx(4.0)  # = n_experts


def test_capacity_drops_are_counted():
    assert expert_capacity(12, 4, 1, 1.0) == 3 and expert_capacity(10, 4, 2, 1.25) == 7
    indices = torch.tensor([[0], [0], [0], [1], [0]])  # four tokens want expert 0, capacity 2
    keep = within_capacity(indices, n_experts=2, capacity=2)
    assert keep[:, 0].tolist() == [True, True, False, True, False]
    moe = MoE(8, 12, n_experts=2, top_k=1, capacity_factor=1.0).eval()
    with torch.no_grad():
        moe.gate.weight.zero_()
        moe.gate.weight[0, 0] = 10.0  # every token with x[..., 0] > 0 goes to expert 0
        x = torch.randn(1, 20, 8)
        x[..., 0] = 1.0  # all of them: expert 0 takes its capacity of 10, drops the other 10
        y = moe(x)
    assert moe.load.tolist() == [20, 0] and moe.dropped.tolist() == [10, 0]
    assert (y[0, 10:] == 0).all() and (y[0, :10] != 0).any()  # dropped tokens get nothing


def test_second_choices_queue_after_first_choices():
    indices = torch.tensor([[1, 0], [0, 1], [0, 1]])  # expert 0: second choice of token 0, first of 1 and 2
    keep = within_capacity(indices, n_experts=2, capacity=2)
    assert keep.tolist() == [[True, False], [True, True], [True, False]]


def test_aux_loss_reaches_the_router_in_training():
    torch.manual_seed(0)
    moe = MoE(8, 12, n_experts=4, top_k=2, aux_loss_coef=0.5).train()
    x = torch.randn(2, 5, 8)
    (moe(x) * 0).sum().backward()  # no gradient from the output: only the auxiliary loss's
    router = torch.nn.Linear(8, 4, bias=False)
    router.weight.data.copy_(moe.gate.weight.data)
    (0.5 * load_balancing_loss(router(x.view(10, 8)), top_k=2)).backward()
    assert torch.allclose(moe.gate.weight.grad, router.weight.grad, atol=1e-7)
    moe.zero_grad()
    moe.eval()  # evaluation: no auxiliary gradient
    (moe(x) * 0).sum().backward()
    assert moe.gate.weight.grad is None or moe.gate.weight.grad.abs().sum() == 0


def test_bad_arguments_raise():
    for kwargs in (dict(dim=0), dict(hidden_dim=-1), dict(n_experts=0), dict(top_k=5), dict(top_k=0),
                   dict(capacity_factor=0.0), dict(capacity_factor=float("nan")), dict(aux_loss_coef=-1.0),
                   dict(top_k=True)):
        with pytest.raises(ValueError):
            MoE(**{"dim": 8, "hidden_dim": 12, "n_experts": 4, "top_k": 2, **kwargs})
    with pytest.raises(ValueError):
        MoE(8, 12, 4)(torch.randn(2, 5, 7))
    with pytest.raises(ValueError):
        route(torch.randn(5, 4), top_k=5)
    with pytest.raises(ValueError):
        route(torch.randn(5), top_k=1)
    with pytest.raises(ValueError):
        load_balancing_loss([], top_k=1)
    with pytest.raises(ValueError):
        expert_capacity(10, 4, 2, -1.0)
    with pytest.raises(TypeError):
        MoE.from_hf(torch.nn.Linear(2, 2))
