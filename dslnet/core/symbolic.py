"""Symbolic tensor dimensions.

A dimension (:data:`Dim`) is either a plain ``int`` or a :class:`SymExpr`: an immutable,
hashable, canonical integer polynomial over named symbols (``N``, ``H``, ...) whose atoms may
also be floor divisions.  Every operation returns a plain ``int`` whenever its result is
constant, so a ``SymExpr`` is never constant.

Canonical form: a sum of ``coef * monomial`` terms, where a monomial is a sorted tuple of
``(atom, power)`` pairs and an atom is a symbol name or a :class:`_Floor`.  Ordering uses
structural keys built from strings and ints only, so it is independent of ``PYTHONHASHSEED``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from math import gcd
from typing import Any

__all__ = [
    "Dim",
    "SymExpr",
    "add",
    "ceildiv",
    "dim_str",
    "dims_equal",
    "floordiv",
    "is_symbolic",
    "mul",
    "sub",
    "terms",
]

_Mono = tuple[tuple[Any, int], ...]  # ((atom, power), ...) sorted by atom key; () is the constant
_Terms = tuple[tuple[_Mono, int], ...]
_Key = tuple[Any, ...]


def _atom_key(atom: str | _Floor) -> _Key:
    return (0, atom) if isinstance(atom, str) else atom.key


def _mono_key(mono: _Mono) -> _Key:
    return tuple((_atom_key(a), p) for a, p in mono)


def _dim_key(d: Dim) -> _Key:
    return (0, d) if isinstance(d, int) else (1, d._sort_key())


class _Floor:
    """Opaque atom ``floor(num/den)``; ``den`` is a positive int > 1 or a SymExpr."""

    __slots__ = ("_hash", "den", "key", "num")

    def __init__(self, num: Dim, den: Dim) -> None:
        self.num = num
        self.den = den
        self.key: _Key = (1, _dim_key(num), _dim_key(den))
        self._hash = hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Floor) and self._hash == other._hash and self.key == other.key

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[Any, ...]:  # cached hashes must not survive pickling
        return (_Floor, (self.num, self.den))

    def __str__(self) -> str:
        num, den = self.num, self.den
        ns = f"({num})" if isinstance(num, SymExpr) and len(num._terms) > 1 else str(num)
        # a single atom with coefficient 1 and power 1 needs no parentheses
        single = isinstance(den, int) or (
            len(den._terms) == 1
            and den._terms[0][1] == 1
            and den._terms[0][0][0][1] == 1
            and len(den._terms[0][0]) == 1
        )
        return f"floor({ns}/{den if single else f'({den})'})"


def _term_str(mono: _Mono, coef: int) -> str:
    if not mono:
        return str(coef)
    parts = [str(a) if p == 1 else f"{a}**{p}" for a, p in mono]
    if coef != 1:
        parts.insert(0, str(coef))
    return "*".join(parts)


class SymExpr:
    """Canonical, immutable integer expression over named symbols (never a constant)."""

    __slots__ = ("_free", "_hash", "_skey", "_str", "_terms")

    def __init__(self, terms: _Terms) -> None:
        """Internal: ``terms`` must already be canonical; use :meth:`symbol` and operators."""
        self._terms = terms
        self._hash = hash(terms)
        self._skey: _Key | None = None
        self._str: str | None = None
        self._free: frozenset[str] | None = None

    @staticmethod
    def symbol(name: str) -> SymExpr:
        """The expression consisting of the single symbol ``name``."""
        if not name:
            raise ValueError("symbol name must be non-empty")
        return SymExpr(((((name, 1),), 1),))

    @property
    def term_count(self) -> int:
        """Terms of the canonical sum: what an operation on it costs grows with them."""
        return len(self._terms)

    def _sort_key(self) -> _Key:
        """Structural, hash-seed independent ordering key."""
        if self._skey is None:
            self._skey = tuple((_mono_key(m), c) for m, c in self._terms)
        return self._skey

    def free_symbols(self) -> frozenset[str]:
        """All symbol names occurring in the expression (including inside floors)."""
        if self._free is None:
            names: set[str] = set()
            for mono, _ in self._terms:
                for atom, _p in mono:
                    if isinstance(atom, str):
                        names.add(atom)
                    else:
                        for d in (atom.num, atom.den):
                            if isinstance(d, SymExpr):
                                names |= d.free_symbols()
            self._free = frozenset(names)
        return self._free

    def substitute(self, env: Mapping[str, Dim]) -> Dim:
        """Replace symbols found in ``env`` (others stay) and re-simplify."""
        if self.free_symbols().isdisjoint(env.keys()):
            return self
        total: Dim = 0
        for mono, coef in self._terms:
            term: Dim = coef
            for atom, power in mono:
                if isinstance(atom, str):
                    val: Dim = env[atom] if atom in env else SymExpr.symbol(atom)
                else:
                    val = floordiv(_subst(atom.num, env), _subst(atom.den, env))
                for _ in range(power):
                    term = mul(term, val)
            total = add(total, term)
        return total

    def evaluate(self, env: Mapping[str, int]) -> int:
        """Integer value under ``env``; raises ValueError naming any missing symbols."""
        missing = sorted(s for s in self.free_symbols() if s not in env)
        if missing:
            raise ValueError(f"cannot evaluate {self}: no value for symbol(s) {', '.join(missing)}")
        return _eval(self, env)

    def __str__(self) -> str:
        if self._str is None:
            out: list[str] = []
            for mono, coef in self._terms:
                body = _term_str(mono, abs(coef))
                if not out:
                    out.append(body if coef > 0 else "-" + body)
                else:
                    out.append((" + " if coef > 0 else " - ") + body)
            self._str = "".join(out)
        return self._str

    def __repr__(self) -> str:
        return f"SymExpr({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SymExpr):
            return NotImplemented
        return self is other or (self._hash == other._hash and self._terms == other._terms)

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> tuple[Any, ...]:  # cached hashes must not survive pickling
        return (SymExpr, (self._terms,))

    def __add__(self, other: Dim) -> Dim:
        return add(self, other) if isinstance(other, (int, SymExpr)) else NotImplemented

    def __radd__(self, other: Dim) -> Dim:
        return add(other, self) if isinstance(other, (int, SymExpr)) else NotImplemented

    def __sub__(self, other: Dim) -> Dim:
        return sub(self, other) if isinstance(other, (int, SymExpr)) else NotImplemented

    def __rsub__(self, other: Dim) -> Dim:
        return sub(other, self) if isinstance(other, (int, SymExpr)) else NotImplemented

    def __mul__(self, other: Dim) -> Dim:
        return mul(self, other) if isinstance(other, (int, SymExpr)) else NotImplemented

    def __rmul__(self, other: Dim) -> Dim:
        return mul(other, self) if isinstance(other, (int, SymExpr)) else NotImplemented

    def __neg__(self) -> SymExpr:
        return SymExpr(tuple((m, -c) for m, c in self._terms))


Dim = int | SymExpr


def _terms(d: Dim) -> Iterable[tuple[_Mono, int]]:
    if isinstance(d, int):
        return (((), d),) if d else ()
    return d._terms


def _term_order(item: tuple[_Mono, int]) -> _Key:
    mono = item[0]  # higher total degree first, so the constant term comes last
    return (-sum(p for _, p in mono), _mono_key(mono))


def _build(acc: Mapping[_Mono, int]) -> Dim:
    """Canonical Dim from a monomial -> coefficient mapping (zero coefficients dropped)."""
    items = [(m, c) for m, c in acc.items() if c]
    if not items:
        return 0
    if len(items) == 1 and not items[0][0]:
        return items[0][1]
    items.sort(key=_term_order)
    return SymExpr(tuple(items))


def _mono_mul(a: _Mono, b: _Mono) -> _Mono:
    if not a:
        return b
    if not b:
        return a
    powers = dict(a)
    for atom, p in b:
        powers[atom] = powers.get(atom, 0) + p
    return tuple(sorted(powers.items(), key=lambda ap: _atom_key(ap[0])))


def _mono_div(a: _Mono, b: _Mono) -> _Mono | None:
    """``a / b`` if monomial ``b`` divides ``a``, else None."""
    if not b:
        return a
    need = dict(b)
    out = []
    for atom, p in a:
        rest = p - need.pop(atom, 0)
        if rest < 0:
            return None
        if rest:
            out.append((atom, rest))
    return None if need else tuple(out)


def _subst(d: Dim, env: Mapping[str, Dim]) -> Dim:
    return d if isinstance(d, int) else d.substitute(env)


def _eval(d: Dim, env: Mapping[str, int]) -> int:
    if isinstance(d, int):
        return d
    total = 0
    for mono, coef in d._terms:
        for atom, power in mono:
            if isinstance(atom, str):
                coef *= env[atom] ** power
            else:
                coef *= (_eval(atom.num, env) // _eval(atom.den, env)) ** power
        total += coef
    return total


def add(a: Dim, b: Dim) -> Dim:
    """``a + b``."""
    if isinstance(a, int):
        if isinstance(b, int):
            return a + b
        if a == 0:
            return b
    elif isinstance(b, int) and b == 0:
        return a
    acc = dict(_terms(a))
    for mono, coef in _terms(b):
        acc[mono] = acc.get(mono, 0) + coef
    return _build(acc)


def sub(a: Dim, b: Dim) -> Dim:
    """``a - b``."""
    return add(a, -b)


def mul(a: Dim, b: Dim) -> Dim:
    """``a * b``."""
    if isinstance(a, int):
        if isinstance(b, int):
            return a * b
        if a == 0:
            return 0
        if a == 1:
            return b
        return SymExpr(tuple((m, c * a) for m, c in b._terms))
    if isinstance(b, int):
        return mul(b, a)
    acc: dict[_Mono, int] = {}
    for m1, c1 in a._terms:
        for m2, c2 in b._terms:
            mono = _mono_mul(m1, m2)
            acc[mono] = acc.get(mono, 0) + c1 * c2
    return _build(acc)


def floordiv(a: Dim, b: Dim) -> Dim:
    """``floor(a / b)``; raises ZeroDivisionError when ``b`` is 0."""
    if isinstance(b, int):
        if b == 0:
            raise ZeroDivisionError("symbolic floordiv by zero")
        if isinstance(a, int):
            return a // b
        if b < 0:
            a, b = -a, -b
        if b == 1:
            return a
        den_mono: _Mono | None = ()
        den_coef = b
    else:
        if a == b:
            return 1
        if b._terms[0][1] < 0:  # normalise: leading denominator coefficient positive
            a, b = -a, -b
        single = len(b._terms) == 1
        den_mono, den_coef = b._terms[0] if single else (None, 1)
    # Split a = b*q + r, with q collecting terms exactly divisible by a single-term b.
    q: dict[_Mono, int] = {}
    r: dict[_Mono, int] = {}
    for mono, coef in _terms(a):
        qm = None if den_mono is None or coef % den_coef else _mono_div(mono, den_mono)
        if qm is None:
            r[mono] = coef
        else:
            q[qm] = coef // den_coef
    quot = _build(q)
    if not r:
        return quot
    if isinstance(b, int) and list(r) == [()]:
        return add(quot, r[()] // b)
    if den_mono is not None:  # floor(g*x / (g*y)) == floor(x / y)
        g = gcd(den_coef, *r.values())
        if g > 1:
            r = {m: c // g for m, c in r.items()}
            b = b // g if isinstance(b, int) else SymExpr(((den_mono, den_coef // g),))
    if isinstance(b, int):  # floor((floor(p/k) + c) / b) == floor((p + c*k) / (k*b))
        nonconst = [m for m in r if m]
        if len(nonconst) == 1 and r[nonconst[0]] == 1 and len(nonconst[0]) == 1:
            atom, power = nonconst[0][0]
            if power == 1 and isinstance(atom, _Floor) and isinstance(atom.den, int):
                inner = add(atom.num, r.get((), 0) * atom.den)
                return add(quot, floordiv(inner, atom.den * b))
    floor_term = SymExpr(((((_Floor(_build(r), b), 1),), 1),))
    return add(quot, floor_term)


def ceildiv(a: Dim, b: Dim) -> Dim:
    """``ceil(a / b)``; raises ZeroDivisionError when ``b`` is 0."""
    if isinstance(b, int):
        if b == 0:
            raise ZeroDivisionError("symbolic ceildiv by zero")
        if isinstance(a, int):
            return -(-a // b)
        if b > 0:
            return floordiv(add(a, b - 1), b)
    return -floordiv(-a, b)


def terms(d: Dim) -> list[tuple[int, Dim]]:
    """``d`` as a sum of coefficient * monomial, in canonical order (the constant last,
    its monomial 1): ``2*N*T + N - 3`` is [(2, N*T), (1, N), (-3, 1)]."""
    return [(coef, _build({mono: 1})) for mono, coef in _terms(d)]


def is_symbolic(d: Dim) -> bool:
    """True when ``d`` is a SymExpr (i.e. not a known constant)."""
    return isinstance(d, SymExpr)


def dim_str(d: Dim) -> str:
    """Readable, deterministic rendering of a dimension."""
    return str(d)


def dims_equal(a: Dim, b: Dim) -> bool:
    """Canonical equality between dimensions (ints and SymExprs mixed)."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return isinstance(a, SymExpr) and isinstance(b, SymExpr) and a == b
