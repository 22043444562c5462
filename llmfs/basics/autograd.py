"""A scalar reverse-mode autograd engine, in the spirit of Karpathy's micrograd.

Built line by line in notebook 01CB/04. Every ``Value`` remembers the values it was computed from
(``_prev``) and how to pass a gradient back to them (``_backward``); ``backward()`` visits the graph
in reverse topological order and applies the chain rule once per node.

    a, b = Value(2.0), Value(-3.0)
    c = (a * b + a.exp()).tanh()
    c.backward()
    a.grad, b.grad            # dc/da, dc/db
"""

from __future__ import annotations

import math
import numbers


class Value:
    """A scalar in a computation graph: ``data`` (its value) and ``grad`` (dOutput/dThis, after backward)."""

    __slots__ = ("data", "grad", "_prev", "_backward", "_op", "label")

    def __init__(self, data: float, _children: tuple[Value, ...] = (), _op: str = "", label: str = ""):
        if isinstance(data, bool) or not isinstance(data, numbers.Real):
            raise TypeError(f"a Value holds one real number (int or float), got {type(data).__name__} {data!r:.40}")
        self.data = float(data)
        self.grad = 0.0
        self._prev = _children
        self._backward = lambda: None  # pushes self.grad into the children's grads
        self._op = _op
        self.label = label

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"

    # ---- the operations: each computes its output and says how to send the gradient back ----
    def __add__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)  # a TypeError if other is no number
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | float) -> Value:
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def _unary(self, value: float, local_grad: float, op: str) -> Value:
        """out = f(self) with f'(self) = local_grad: backward adds local_grad * out.grad to self.grad."""
        out = Value(value, (self,), op)

        def _backward():
            self.grad += local_grad * out.grad

        out._backward = _backward
        return out

    def __pow__(self, k: float) -> Value:
        if isinstance(k, bool) or not isinstance(k, numbers.Real):
            raise TypeError(f"only constant exponents: x ** 2, x ** -1, x ** 0.5; got x ** {type(k).__name__}")
        if self.data < 0 and k != int(k):
            raise ValueError(f"{self.data:g} ** {k}: a negative number to a fractional power is not real")
        return self._unary(self.data**k, k * self.data ** (k - 1), f"**{k}")

    def exp(self) -> Value:
        e = math.exp(self.data)
        return self._unary(e, e, "exp")  # d/dx e^x = e^x

    def log(self) -> Value:
        return self._unary(math.log(self.data), 1.0 / self.data, "log")

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        return self._unary(t, 1.0 - t * t, "tanh")

    def relu(self) -> Value:
        return self._unary(max(self.data, 0.0), float(self.data > 0), "relu")

    def sigmoid(self) -> Value:
        s = 1.0 / (1.0 + math.exp(-self.data)) if self.data >= 0 else math.exp(self.data) / (1.0 + math.exp(self.data))
        return self._unary(s, s * (1.0 - s), "sigmoid")

    # ---- everything else is built from the operations above ----
    def __neg__(self) -> Value:
        return self * -1

    def __sub__(self, other: Value | float) -> Value:
        return self + (-other)

    def __truediv__(self, other: Value | float) -> Value:
        return self * other**-1

    def __radd__(self, other: float) -> Value:
        return self + other

    def __rsub__(self, other: float) -> Value:
        return (-self) + other

    def __rmul__(self, other: float) -> Value:
        return self * other

    def __rtruediv__(self, other: float) -> Value:
        return Value(other) * self**-1

    # ---- backpropagation ----
    def backward(self) -> None:
        """Set every ``grad`` in the graph below to d(self)/d(node), by the chain rule in reverse order.

        Grads accumulate (+=): call ``zero_grad`` (or set ``.grad = 0``) before a second backward.
        """
        order = topological_order(self)
        self.grad = 1.0
        for v in reversed(order):
            v._backward()


def topological_order(root: Value) -> list[Value]:
    """Every node of root's graph, each after all the nodes it was computed from (root last).

    The depth-first search of the notebook, written with an explicit stack instead of recursion so that
    deep graphs do not hit Python's recursion limit; it returns the same order as the recursive one.
    """
    if not isinstance(root, Value):
        raise TypeError(f"root must be a Value, got {type(root).__name__}")
    order: list[Value] = []
    visited: set[int] = set()
    stack: list[tuple[Value, bool]] = [(root, False)]
    while stack:
        v, children_done = stack.pop()
        if children_done:
            order.append(v)
            continue
        if id(v) in visited:
            continue
        visited.add(id(v))
        stack.append((v, True))
        stack.extend((c, False) for c in reversed(v._prev) if id(c) not in visited)  # first child on top
    return order


def zero_grad(values) -> None:
    """Set ``grad = 0`` on each of the given Values (e.g. a model's parameters)."""
    values = list(values) if hasattr(values, "__iter__") else [values]
    bad = [type(v).__name__ for v in values if not isinstance(v, Value)]
    if bad:
        raise TypeError(f"zero_grad takes an iterable of Values (e.g. a model's parameters), got a {bad[0]}")
    for v in values:
        v.grad = 0.0
