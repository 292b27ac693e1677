"""Symbolic tensor sizes: integers, constructor arguments and config attributes, simple arithmetic.

A :class:`Dim` is a polynomial with integer coefficients over symbols (``dim``, ``cfg.hidden``,
``self.width``). Two sizes are *provably* different only when their difference cannot be zero for
any positive sizes: a nonzero constant (``64`` vs ``32``, ``d + 1`` vs ``d``) or a difference whose
terms all have one sign and whose every symbol occurs on both sides (``2 * d`` vs ``d``). ``d + e``
vs ``d`` proves nothing (``e`` may be 0), nor do two different symbols (they may be equal).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import NamedTuple, Union

from nnlint.engine.names import dotted_name

Monomial = tuple[str, ...]  #: sorted symbol names; ``()`` is the constant term


class Dim(NamedTuple):
    """A size: ``terms`` maps monomials to nonzero coefficients (sorted, so equal sizes compare equal)."""

    terms: tuple[tuple[Monomial, int], ...]

    @staticmethod
    def of(value: int) -> Dim:
        return Dim((((), value),) if value else ())

    @staticmethod
    def symbol(name: str) -> Dim:
        return Dim((((name,), 1),))

    @property
    def constant(self) -> int | None:
        """The integer this size is, or None when it involves symbols."""
        if not self.terms:
            return 0
        if len(self.terms) == 1 and self.terms[0][0] == ():
            return self.terms[0][1]
        return None

    @property
    def simple(self) -> bool:
        """Small enough to reason about: few terms, low degree, numbers of reasonable size."""
        return len(self.terms) <= 16 and all(len(m) <= 6 and abs(c) < 1 << 62 for m, c in self.terms)

    def _combine(self, other: Dim, sign: int) -> Dim:
        merged = dict(self.terms)
        for monomial, coefficient in other.terms:
            merged[monomial] = merged.get(monomial, 0) + sign * coefficient
        return Dim(tuple(sorted((m, c) for m, c in merged.items() if c)))

    def __add__(self, other: object) -> Dim:  # type: ignore[override]
        return self._combine(other, 1) if isinstance(other, Dim) else NotImplemented

    def __sub__(self, other: Dim) -> Dim:
        return self._combine(other, -1)

    def __mul__(self, other: object) -> Dim:  # type: ignore[override]
        if not isinstance(other, Dim):
            return NotImplemented
        product: dict[Monomial, int] = {}
        for left, a in self.terms:
            for right, b in other.terms:
                monomial = tuple(sorted(left + right))
                product[monomial] = product.get(monomial, 0) + a * b
        return Dim(tuple(sorted((m, c) for m, c in product.items() if c)))

    def divided(self, divisor: int) -> Dim | None:
        """Exact division by a positive integer when every coefficient divides; else None."""
        if divisor <= 0 or any(c % divisor for _, c in self.terms):
            return None
        return Dim(tuple((m, c // divisor) for m, c in self.terms))

    def differs(self, other: Dim) -> bool:
        """Different for every positive value of the symbols (see the module docstring)."""
        difference = self - other
        if not difference.terms:
            return False
        signs = {coefficient > 0 for _, coefficient in difference.terms}
        if len(signs) != 1:
            return False
        mine = {symbol for monomial, _ in self.terms for symbol in monomial}
        theirs = {symbol for monomial, _ in other.terms for symbol in monomial}
        return all(set(monomial) <= (mine & theirs) for monomial, _ in difference.terms)

    def __str__(self) -> str:
        if not self.terms:
            return "0"
        parts = []
        for monomial, coefficient in sorted(self.terms, key=lambda t: (-len(t[0]), t[0])):
            factors = [*monomial] if monomial else []
            if not factors:
                parts.append(str(coefficient))
            elif coefficient == 1:
                parts.append(" * ".join(factors))
            elif coefficient == -1:
                parts.append("-" + " * ".join(factors))
            else:
                parts.append(" * ".join([str(coefficient), *factors]))
        return " + ".join(parts).replace("+ -", "- ")


#: what a name may hold while evaluating sizes: a size, a list/tuple of them, or a flag
Value = Union[Dim, bool, str, "ValueList", None]


class ValueList(tuple):
    """A list or tuple of evaluated values (``dims = [784, 256, 10]``)."""


class Env:
    """Names bound while evaluating one function: parameters are symbols, locals are evaluated.

    ``symbols`` are the names that stand for themselves (parameters, ``self``); anything bound
    to None is unknown and makes what uses it unknown.
    """

    def __init__(self, symbols: set[str], bound: Mapping[str, Value] | None = None, self_name: str | None = None):
        self.symbols = symbols
        self.bound: dict[str, Value] = dict(bound or {})
        self.self_name = self_name

    def copy(self) -> Env:
        return Env(set(self.symbols), self.bound, self.self_name)

    def forget(self, name: str) -> None:
        self.symbols.discard(name)
        self.bound[name] = None

    def evaluate(self, node: ast.expr | None) -> Value:
        """The value of a size expression, or None when it cannot be read."""
        if node is None:
            return None
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool):
                return value
            if isinstance(value, int):
                return Dim.of(value)
            return value if isinstance(value, str) else None
        if isinstance(node, ast.Name):
            if node.id in self.bound:
                return self.bound[node.id]
            return Dim.symbol(node.id) if node.id in self.symbols else None
        if isinstance(node, ast.Attribute):
            return self._attribute(node)
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.evaluate(element) for element in node.elts if not isinstance(element, ast.Starred)]
            return ValueList(items) if len(items) == len(node.elts) else None
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.evaluate(node.operand)
            return Dim.of(0) - inner if isinstance(inner, Dim) else None
        if isinstance(node, ast.BinOp):
            return self._binary(node)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "len" and node.args:
            items = self.evaluate(node.args[0])
            return Dim.of(len(items)) if isinstance(items, ValueList) else None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "int" and node.args:
            inner = self.evaluate(node.args[0])
            return inner if isinstance(inner, Dim) else None
        return None

    def _attribute(self, node: ast.Attribute) -> Value:
        dotted = dotted_name(node)
        if dotted is None:
            return None
        if dotted in self.bound:
            return self.bound[dotted]
        root = dotted.split(".", 1)[0]
        if root in self.bound or root not in self.symbols:
            return None  # an attribute of a local value, or of a name the function does not receive
        return Dim.symbol(dotted)

    def _binary(self, node: ast.BinOp) -> Value:
        value = self._combined(node)
        if isinstance(value, Dim) and not value.simple:
            return None  # (``x = x * x`` unrolled in a loop: give up before it explodes)
        return value

    def _combined(self, node: ast.BinOp) -> Value:
        left, right = self.evaluate(node.left), self.evaluate(node.right)
        if isinstance(node.op, ast.Add) and isinstance(left, ValueList) and isinstance(right, ValueList):
            return ValueList((*left, *right))
        if isinstance(node.op, ast.Mult) and isinstance(left, ValueList) and isinstance(right, Dim):
            count = right.constant
            return ValueList(left * count) if count is not None and 0 <= count <= 64 else None
        if not (isinstance(left, Dim) and isinstance(right, Dim)):
            return None
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.FloorDiv):
            divisor = right.constant
            if divisor is not None and divisor > 0:
                if left.constant is not None:
                    return Dim.of(left.constant // divisor)
                exact = left.divided(divisor)
                return exact if exact is not None else Dim.symbol(f"({left}) // {divisor}")
            return None
        small = left.constant is not None and right.constant is not None and 0 <= right.constant <= 16
        if isinstance(node.op, ast.Pow) and small and abs(left.constant) <= 1 << 16:  # type: ignore[arg-type]
            return Dim.of(left.constant**right.constant)  # type: ignore[operator]
        return None

    def _subscript(self, node: ast.Subscript) -> Value:
        items = self.evaluate(node.value)
        if not isinstance(items, ValueList):
            return None
        if isinstance(node.slice, ast.Slice):
            bounds = [
                self.evaluate(part) if part is not None else None for part in (node.slice.lower, node.slice.upper)
            ]
            if node.slice.step is not None:
                return None
            ints = [b.constant if isinstance(b, Dim) else None for b in bounds]
            if any(
                part is not None and value is None
                for part, value in zip((node.slice.lower, node.slice.upper), ints, strict=False)
            ):
                return None
            return ValueList(items[ints[0] : ints[1]])
        index = self.evaluate(node.slice)
        position = index.constant if isinstance(index, Dim) else None
        if position is None or not -len(items) <= position < len(items):
            return None
        return items[position]


def as_dim(value: Value) -> Dim | None:
    return value if isinstance(value, Dim) else None


def as_ints(value: Value, count: int) -> tuple[Dim, ...] | None:
    """``3`` → (3, 3) for two spatial dims; ``(3, 5)`` as it is; None when unreadable."""
    if isinstance(value, Dim):
        return (value,) * count
    if isinstance(value, ValueList) and len(value) == count and all(isinstance(v, Dim) for v in value):
        return tuple(value)  # type: ignore[arg-type]
    return None
