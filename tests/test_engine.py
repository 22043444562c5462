"""The scalar autograd engine gives the values and gradients of torch.autograd."""

import math
import random

import pytest
import torch

from llmfs.basics.autograd import Value, topological_order, zero_grad

UNARY = {
    "exp": (Value.exp, torch.exp),
    "tanh": (Value.tanh, torch.tanh),
    "relu": (Value.relu, torch.relu),
    "sigmoid": (Value.sigmoid, torch.sigmoid),
    "log": (lambda v: v.log(), torch.log),
    "square": (lambda v: v**2, lambda t: t**2),
    "neg": (lambda v: -v, lambda t: -t),
}


def _apply(op: str, a, b):
    """One operation of the random graphs, written once for Values and torch tensors alike."""
    if op in ("+", "-", "*"):
        return {"+": a + b, "-": a - b, "*": a * b}[op]
    return a**2 if op == "square" else getattr(a, op)()


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("x", [-1.7, 0.3, 2.2])
def test_unary_ops_match_torch(name, x):
    ours, theirs = UNARY[name]
    if name == "log":
        x = abs(x)
    a = Value(x)
    out = ours(a)
    out.backward()
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ref = theirs(t)
    ref.backward()
    assert out.data == pytest.approx(ref.item(), abs=1e-12)
    assert a.grad == pytest.approx(t.grad.item(), abs=1e-12)


def test_binary_ops_and_constants_match_torch():
    a, b = Value(1.5), Value(-0.7)
    out = (a * b + 3) / (a - b) ** 2 - 2 / a + (1 - b) * 4 + a**0.5 - b / 5
    out.backward()
    ta = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(-0.7, dtype=torch.float64, requires_grad=True)
    ref = (ta * tb + 3) / (ta - tb) ** 2 - 2 / ta + (1 - tb) * 4 + ta**0.5 - tb / 5
    ref.backward()
    assert out.data == pytest.approx(ref.item(), abs=1e-12)
    assert (a.grad, b.grad) == pytest.approx((ta.grad.item(), tb.grad.item()), abs=1e-12)


def _random_expression(rng: random.Random, n_leaves: int = 3, n_ops: int = 12):
    """The same random expression in our engine and in torch: (root, leaves, torch root, torch leaves)."""
    xs = [rng.uniform(-2, 2) for _ in range(n_leaves)]
    leaves = [Value(x) for x in xs]
    tleaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    nodes, tnodes = list(leaves), list(tleaves)
    for _ in range(n_ops):
        i, j = rng.randrange(len(nodes)), rng.randrange(len(nodes))
        op = rng.choice(["+", "-", "*", "tanh", "relu", "exp", "sigmoid", "square"])
        a, b, ta, tb = nodes[i], nodes[j], tnodes[i], tnodes[j]
        if op == "exp":  # keep values small
            a, ta = a.tanh(), ta.tanh()
        out, tout = _apply(op, a, b), _apply(op, ta, tb)  # the same op on our Values and on torch tensors
        nodes.append(out)
        tnodes.append(tout)
    root, troot = sum(nodes), sum(tnodes)  # every leaf and every op reaches the root
    return root, leaves, troot, tleaves


def test_random_graphs_match_torch():
    rng = random.Random(0)
    for _ in range(50):
        root, leaves, troot, tleaves = _random_expression(rng)
        root.backward()
        troot.backward()
        assert abs(root.data - troot.item()) < 1e-9
        for v, t in zip(leaves, tleaves):
            assert abs(v.grad - t.grad.item()) < 1e-9


def _recursive_order(root: Value) -> list[Value]:
    order, seen = [], set()

    def build(v):
        if v not in seen:
            seen.add(v)
            for c in v._prev:
                build(c)
            order.append(v)

    build(root)
    return order


def test_topological_order_is_valid_and_equals_recursive_dfs():
    rng = random.Random(1)
    for _ in range(20):
        root, *_ = _random_expression(rng, n_ops=15)
        order = topological_order(root)
        position = {id(v): k for k, v in enumerate(order)}
        assert len(position) == len(order), "a node appears twice"
        assert order[-1] is root
        for v in order:
            assert all(position[id(c)] < position[id(v)] for c in v._prev)
        assert [id(v) for v in order] == [id(v) for v in _recursive_order(root)]


def test_reused_node_accumulates_gradient():
    a = Value(3.0)
    b = a * a + a  # db/da = 2a + 1 = 7
    b.backward()
    assert a.grad == 7.0
    zero_grad([a])
    assert a.grad == 0.0


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = Value(0.5)
    y = x
    for _ in range(5_000):  # deeper than the default recursion limit (1000)
        y = y * 1.0 + 0.0
    y.backward()
    assert y.data == 0.5 and x.grad == 1.0


def test_sigmoid_and_log_are_inverse_of_logit():
    x = Value(0.8)
    s = x.sigmoid()
    logit = (s / (1 - s)).log()
    logit.backward()
    assert logit.data == pytest.approx(0.8) and x.grad == pytest.approx(1.0)
    assert math.isclose(s.data, 1 / (1 + math.exp(-0.8)))
