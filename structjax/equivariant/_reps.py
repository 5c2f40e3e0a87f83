"""Representations of matrix groups, built from the defining one by duals, tensor products and
direct sums, as in EMLP (Finzi, Welling & Wilson 2021, Sec. 5): static data, hashable, so a
pair of representations is a cache key for its equivariant basis."""

import abc
import functools
import operator
from collections.abc import Sequence

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
    (direct sum), `k * rep` (k copies) and `T(p, q, G)`. Representations are static data
    (hashable), so a pair of them keys the cached `equivariant_basis`.

    Reference: Finzi, Welling & Wilson, "A Practical Method for Constructing Equivariant
    Multilayer Perceptrons of Arbitrary Matrix Groups", ICML 2021, Sec. 5.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> G = se.SO(3)
    >>> rep = se.V(G) * se.V(G) + se.Scalar(G)
    >>> g, h = G.sample(jax.random.key(0)), G.sample(jax.random.key(1))
    >>> # rho is a homomorphism: rho(g h) = rho(g) rho(h)
    >>> print(bool(jnp.allclose(rep.rho(g @ h), rep.rho(g) @ rep.rho(h), atol=1e-12)))
    True

    ```
    """

    @property
    @abc.abstractmethod
    def group(self) -> Group:
        """The `Group` represented."""
        raise NotImplementedError

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """The dimension of the representation space."""
        raise NotImplementedError

    @abc.abstractmethod
    def rho(self, g: Float[Array | np.ndarray, "d d"]) -> Float[Array | np.ndarray, "size size"]:
        """The matrix $\\rho(g)$.

        **Arguments:**

        - `g`: a group element, its `(d, d)` matrix in the defining representation (a NumPy
            array gives a NumPy result, in float64; a JAX array a JAX one).

        **Returns:** the `(size, size)` matrix $\\rho(g)$.
        """
        raise NotImplementedError

    @abc.abstractmethod
    def drho(self, a: Float[Array | np.ndarray, "d d"]) -> Float[Array | np.ndarray, "size size"]:
        """The Lie-algebra representation $d\\rho(A)$.

        **Arguments:**

        - `a`: a Lie-algebra element, a `(d, d)` matrix (NumPy or JAX, as for `rho`).

        **Returns:** the `(size, size)` matrix $d\\rho(A)$.
        """
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
        """The dual representation $\\rho^*$ (the dual of a `Dual` is its original)."""
        return Dual(self) if not isinstance(self, Dual) else self.rep

    def __add__(self, other: "AbstractRep") -> "AbstractRep":
        return DirectSum(components(self) + components(other))

    def __mul__(self, other: "AbstractRep | int") -> "AbstractRep":
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
    """The trivial representation on $\\mathbb R$: $\\rho(g) = 1$, $d\\rho(A) = 0$.

    **Arguments:**

    - `group_`: the `Group`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> G = se.O(3)
    >>> x = jnp.asarray([2.0])
    >>> print(bool(jnp.allclose(se.Scalar(G).act(G.sample(jax.random.key(0)), x), x)))
    True

    ```
    """

    group_: Group = eqx.field(static=True)

    @property
    def group(self) -> Group:
        return self.group_

    @property
    def size(self) -> int:
        return 1

    def rho(self, g: Float[Array | np.ndarray, "d d"]) -> Float[Array | np.ndarray, "size size"]:
        return _xp(g)[0].ones((1, 1), g.dtype)

    def drho(self, a: Float[Array | np.ndarray, "d d"]) -> Float[Array | np.ndarray, "size size"]:
        return _xp(a)[0].zeros((1, 1), a.dtype)


class Vector(AbstractRep):
    """The defining representation $\\rho(g) = g$ on $\\mathbb R^d$ (EMLP's `V`).

    **Arguments:**

    - `group_`: the `Group`, of `d x d` matrices.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> G = se.SO(3)
    >>> g, x = G.sample(jax.random.key(0)), jnp.asarray([1.0, 2.0, 3.0])
    >>> y = se.Vector(G).act(g, x)
    >>> n = jnp.linalg.norm
    >>> print(bool(jnp.allclose(y, g @ x)), bool(jnp.isclose(n(y), n(x))))
    True True

    ```
    """

    group_: Group = eqx.field(static=True)

    @property
    def group(self) -> Group:
        return self.group_

    @property
    def size(self) -> int:
        return self.group_.d

    def rho(self, g: Float[Array | np.ndarray, "d d"]) -> Float[Array | np.ndarray, "size size"]:
        return g

    def drho(self, a: Float[Array | np.ndarray, "d d"]) -> Float[Array | np.ndarray, "size size"]:
        return a


class Dual(AbstractRep):
    """The dual (contragredient) representation $\\rho^*(g) = \\rho(g)^{-\\top}$,
    $d\\rho^*(A) = -d\\rho(A)^\\top$: equal to $\\rho$ for orthogonal groups, not for the Lorentz
    or symplectic groups.

    **Arguments:**

    - `rep`: the representation dualised (usually written `rep.dual`).

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> G = se.Lorentz()
    >>> g = G.sample(jax.random.key(0))
    >>> V = se.V(G)
    >>> # the pairing <rho*(g) y, rho(g) x> is invariant
    >>> x, y = jnp.asarray([1.0, 0.5, 0.0, 2.0]), jnp.asarray([0.3, 1.0, -1.0, 0.5])
    >>> print(bool(jnp.isclose(V.dual.act(g, y) @ V.act(g, x), y @ x, atol=1e-9)))
    True

    ```
    """

    rep: AbstractRep = eqx.field(static=True)

    @property
    def group(self) -> Group:
        return self.rep.group

    @property
    def size(self) -> int:
        return self.rep.size

    def rho(self, g: Float[Array | np.ndarray, "d d"]) -> Float[Array | np.ndarray, "size size"]:
        return _xp(g)[0].linalg.inv(self.rep.rho(g)).T

    def drho(self, a: Float[Array | np.ndarray, "d d"]) -> Float[Array | np.ndarray, "size size"]:
        return -self.rep.drho(a).T


class TensorProduct(AbstractRep):
    """$\\rho_1 \\otimes \\dots \\otimes \\rho_k$ on row-major flattened tensors:
    $\\rho = \\rho_1 \\otimes \\dots$ (Kronecker),
    $d\\rho = \\sum_i I \\otimes d\\rho_i \\otimes I$.

    **Arguments:**

    - `factors`: the representations $\\rho_1, \\dots, \\rho_k$ (usually written
        `r1 * r2`), of one group.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> G = se.SO(3)
    >>> g, X = G.sample(jax.random.key(0)), jnp.arange(9.0).reshape(3, 3)
    >>> y = (se.V(G) * se.V(G)).act(g, X.reshape(-1))
    >>> print(bool(jnp.allclose(y.reshape(3, 3), g @ X @ g.T)))
    True

    ```
    """

    factors: tuple[AbstractRep, ...] = eqx.field(static=True)

    @property
    def group(self) -> Group:
        return self.factors[0].group

    @property
    def size(self) -> int:
        return int(np.prod([f.size for f in self.factors]))

    def rho(self, g: Float[Array | np.ndarray, "d d"]) -> Float[Array | np.ndarray, "size size"]:
        return functools.reduce(_xp(g)[0].kron, [f.rho(g) for f in self.factors])

    def drho(self, a: Float[Array | np.ndarray, "d d"]) -> Float[Array | np.ndarray, "size size"]:
        xp = _xp(a)[0]
        terms = []
        for i, f in enumerate(self.factors):
            mats = [xp.eye(h.size, dtype=a.dtype) for h in self.factors]
            mats[i] = f.drho(a)
            terms.append(functools.reduce(xp.kron, mats))
        return functools.reduce(operator.add, terms)


class DirectSum(AbstractRep):
    """$\\bigoplus_i \\rho_i^{\\oplus m_i}$: `components` = ((rep, multiplicity), ...), laid out
    in order, the copies of each contiguous.

    **Arguments:**

    - `parts`: `(rep, multiplicity)` pairs (usually written `r1 + r2`, `k * rep`); zero
        multiplicities are dropped and neighbouring equal reps merged.

    **Raises:** `ValueError` for no component left, or components of different groups.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> G = se.SO(2)
    >>> rep = 2 * se.Scalar(G) + se.V(G)
    >>> g, x = G.sample(jax.random.key(0)), jnp.asarray([1.0, 2.0, 3.0, 4.0])
    >>> y = rep.act(g, x)
    >>> print(rep.size, bool(jnp.allclose(y[:2], x[:2])), bool(jnp.allclose(y[2:], g @ x[2:])))
    4 True True

    ```
    """

    parts: tuple[tuple[AbstractRep, int], ...] = eqx.field(static=True)

    def __init__(self, parts: Sequence[tuple[AbstractRep, int]]):
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
    def group(self) -> Group:
        return self.parts[0][0].group

    @property
    def size(self) -> int:
        return sum(rep.size * m for rep, m in self.parts)

    def rho(self, g: Float[Array | np.ndarray, "d d"]) -> Float[Array | np.ndarray, "size size"]:
        blocks = [r.rho(g) for r, m in self.parts for _ in range(m)]
        return _xp(g)[1](*blocks)  # pyright: ignore[reportReturnType]  # numpy in, numpy out

    def drho(self, a: Float[Array | np.ndarray, "d d"]) -> Float[Array | np.ndarray, "size size"]:
        blocks = [r.drho(a) for r, m in self.parts for _ in range(m)]
        return _xp(a)[1](*blocks)  # pyright: ignore[reportReturnType]  # numpy in, numpy out


def components(rep: AbstractRep) -> tuple[tuple[AbstractRep, int], ...]:
    """The (rep, multiplicity) components of a direct sum; `((rep, 1),)` otherwise."""
    return rep.parts if isinstance(rep, DirectSum) else ((rep, 1),)


def _factors(rep):
    return rep.factors if isinstance(rep, TensorProduct) else (rep,)


def V(group: Group) -> Vector:
    """The defining representation of `group` (EMLP's `V`), a `Vector`.

    **Arguments:**

    - `group`: the `Group`.

    **Returns:** `Vector(group)`, of size `group.d`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> G = se.SO(3)
    >>> g, x = G.sample(jax.random.key(0)), jnp.asarray([1.0, 0.0, 0.0])
    >>> print(se.V(G).size, bool(jnp.allclose(se.V(G).act(g, x), g[:, 0])))
    3 True

    ```
    """
    return Vector(group)


def T(p: int, q: int, group: Group) -> AbstractRep:
    """Tensors of type $(p, q)$: $V^{\\otimes p} \\otimes (V^*)^{\\otimes q}$ (a `Scalar` for
    $p = q = 0$, a `Vector` or its dual for one factor).

    **Arguments:**

    - `p`: contravariant order, an int >= 0.
    - `q`: covariant order, an int >= 0.
    - `group`: the `Group`.

    **Returns:** the representation, of size `group.d ** (p + q)`.

    **Raises:** `ValueError`/`TypeError` for `p` or `q` not an int >= 0.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> G = se.SO(3)
    >>> g, A = G.sample(jax.random.key(0)), jnp.arange(9.0).reshape(3, 3)
    >>> y = se.T(1, 1, G).act(g, A.reshape(-1))  # a linear map: g A g^{-1}
    >>> print(se.T(1, 1, G).size, bool(jnp.allclose(y.reshape(3, 3), g @ A @ g.T)))
    9 True

    ```
    """
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
