"""Representations of matrix groups, built from the defining one by duals, tensor products and
direct sums, as in EMLP (Finzi, Welling & Wilson 2021, Sec. 5): static data, hashable, so a
pair of representations is a cache key for its equivariant basis."""

import abc
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
from jaxtyping import Array, Float

from .._groups import Group
from .._guards import check_real_floating, static_int


class AbstractRep(eqx.Module):
    """A representation $\\rho$ of a `Group` on $\\mathbb R^{size}$: `rho(g)` for a group
    element $g$ (its matrix in the defining representation), `drho(A)` for a Lie-algebra
    element, and `act(g, x)` $= \\rho(g) x$ on a vector of `size` entries.

    Build them with `V(G)`, `Scalar(G)`, `rep.dual`, `r1 * r2` (tensor product), `r1 + r2`
    (direct sum), `k * rep` (k copies) and `T(p, q, G)`."""

    @property
    @abc.abstractmethod
    def group(self) -> Group:
        raise NotImplementedError

    @property
    @abc.abstractmethod
    def size(self) -> int:
        raise NotImplementedError

    @abc.abstractmethod
    def rho(self, g: Array) -> Array:
        raise NotImplementedError

    @abc.abstractmethod
    def drho(self, a: Array) -> Array:
        raise NotImplementedError

    def act(self, g: Float[Array, "d d"], x: Float[Array, " size"]) -> Float[Array, " size"]:
        """$\\rho(g) x$, applied component by component. `x` must be one real floating-point
        vector of `size` entries (`ValueError`/`TypeError` at trace time). `g` is used as
        given: a general `Group` has no cheap membership test, so a matrix outside the group
        gives $\\rho$ of that matrix (the planar actions `rotate_image`, `FieldType.act` and
        `euclidean_action` do test membership)."""
        check_rep_input(self, x, "rep.act(g, x)")
        out, start = [], 0
        for rep, mult in components(self):
            block = x[start : start + mult * rep.size].reshape(mult, rep.size)
            out.append((block @ rep.rho(g).T).reshape(-1))
            start += mult * rep.size
        return jnp.concatenate(out)

    @property
    def dual(self) -> "AbstractRep":
        return Dual(self) if not isinstance(self, Dual) else self.rep

    def __add__(self, other: "AbstractRep") -> "AbstractRep":
        return DirectSum(components(self) + components(other))

    def __mul__(self, other):
        if isinstance(other, int):
            return other * self
        _same_group(self, other)
        if isinstance(self, Scalar):
            return other
        if isinstance(other, Scalar):
            return self
        return TensorProduct(_factors(self) + _factors(other))

    def __rmul__(self, k: int) -> "AbstractRep":
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
            return NotImplemented
        k = static_int(k, f"{k!r} * rep", "the multiplicity", minimum=0)
        return DirectSum(tuple((rep, k * m) for rep, m in components(self)))


def _xp(a):
    """numpy for numpy input (the basis solver: float64 whatever JAX's configuration), jax.numpy
    otherwise (actions on traced group elements)."""
    if isinstance(a, np.ndarray):
        return np, scipy.linalg.block_diag
    return jnp, jax.scipy.linalg.block_diag


def _same_group(a, b):
    if a.group != b.group:
        raise ValueError(f"Representations of different groups: {a.group.name}, {b.group.name}.")


class Scalar(AbstractRep):
    """The trivial representation on $\\mathbb R$."""

    group_: Group = eqx.field(static=True)

    @property
    def group(self):
        return self.group_

    @property
    def size(self):
        return 1

    def rho(self, g):
        return _xp(g)[0].ones((1, 1), g.dtype)

    def drho(self, a):
        return _xp(a)[0].zeros((1, 1), a.dtype)


class Vector(AbstractRep):
    """The defining representation $\\rho(g) = g$ on $\\mathbb R^d$ (EMLP's `V`)."""

    group_: Group = eqx.field(static=True)

    @property
    def group(self):
        return self.group_

    @property
    def size(self):
        return self.group_.d

    def rho(self, g):
        return g

    def drho(self, a):
        return a


class Dual(AbstractRep):
    """The dual (contragredient) representation $\\rho^*(g) = \\rho(g)^{-\\top}$,
    $d\\rho^*(A) = -d\\rho(A)^\\top$: equal to $\\rho$ for orthogonal groups, not for the Lorentz
    or symplectic groups."""

    rep: AbstractRep = eqx.field(static=True)

    @property
    def group(self):
        return self.rep.group

    @property
    def size(self):
        return self.rep.size

    def rho(self, g):
        return _xp(g)[0].linalg.inv(self.rep.rho(g)).T

    def drho(self, a):
        return -self.rep.drho(a).T


class TensorProduct(AbstractRep):
    """$\\rho_1 \\otimes \\dots \\otimes \\rho_k$ on row-major flattened tensors:
    $\\rho = \\rho_1 \\otimes \\dots$ (Kronecker),
    $d\\rho = \\sum_i I \\otimes d\\rho_i \\otimes I$."""

    factors: tuple[AbstractRep, ...] = eqx.field(static=True)

    @property
    def group(self):
        return self.factors[0].group

    @property
    def size(self):
        return int(np.prod([f.size for f in self.factors]))

    def rho(self, g):
        return functools.reduce(_xp(g)[0].kron, [f.rho(g) for f in self.factors])

    def drho(self, a):
        xp = _xp(a)[0]
        total = 0
        for i, f in enumerate(self.factors):
            mats = [xp.eye(h.size, dtype=a.dtype) for h in self.factors]
            mats[i] = f.drho(a)
            total = total + functools.reduce(xp.kron, mats)
        return total


class DirectSum(AbstractRep):
    """$\\bigoplus_i \\rho_i^{\\oplus m_i}$: `components` = ((rep, multiplicity), ...), laid out
    in order, the copies of each contiguous."""

    parts: tuple[tuple[AbstractRep, int], ...] = eqx.field(static=True)

    def __init__(self, parts):
        merged: list[tuple[AbstractRep, int]] = []
        for rep, m in parts:
            if m == 0:
                continue
            if merged and merged[-1][0] == rep:
                merged[-1] = (rep, merged[-1][1] + m)
            else:
                merged.append((rep, m))
        if not merged:
            raise ValueError("A direct sum needs at least one component.")
        for rep, _ in merged[1:]:
            _same_group(merged[0][0], rep)
        self.parts = tuple(merged)

    @property
    def group(self):
        return self.parts[0][0].group

    @property
    def size(self):
        return sum(rep.size * m for rep, m in self.parts)

    def rho(self, g):
        return _xp(g)[1](*[r.rho(g) for r, m in self.parts for _ in range(m)])

    def drho(self, a):
        return _xp(a)[1](*[r.drho(a) for r, m in self.parts for _ in range(m)])


def components(rep: AbstractRep) -> tuple[tuple[AbstractRep, int], ...]:
    """The (rep, multiplicity) components of a direct sum; `((rep, 1),)` otherwise."""
    return rep.parts if isinstance(rep, DirectSum) else ((rep, 1),)


def _factors(rep):
    return rep.factors if isinstance(rep, TensorProduct) else (rep,)


def V(group: Group) -> Vector:
    """The defining representation of `group`."""
    return Vector(group)


def T(p: int, q: int, group: Group) -> AbstractRep:
    """Tensors of type $(p, q)$: $V^{\\otimes p} \\otimes (V^*)^{\\otimes q}$ (a `Scalar` for
    $p = q = 0$)."""
    p = static_int(p, f"T({p!r}, {q!r})", "p", minimum=0)
    q = static_int(q, f"T({p!r}, {q!r})", "q", minimum=0)
    factors = (V(group),) * p + (V(group).dual,) * q
    return TensorProduct(factors) if len(factors) > 1 else (factors[0] if factors else
                                                             Scalar(group))  # fmt: skip


def check_rep_input(rep: AbstractRep, x, name: str = "x"):
    """Trace-time: `x` is one real floating-point vector of `rep.size` entries."""
    if jnp.ndim(x) != 1 or jnp.shape(x)[0] != rep.size:
        raise ValueError(
            f"`{name}` takes one vector `x` of the representation's size ({rep.size},), got shape "
            f"{jnp.shape(x)}; batch with `jax.vmap`."
        )
    check_real_floating(x, name, "x")
