"""The product of manifolds, points as tuples of arrays."""

import dataclasses
from collections.abc import Iterable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import ArrayLike, PRNGKeyArray, PyTree, Shaped

from .._guards import check_real_floating
from ._base import AbstractManifold

_ARGUMENTS = {
    "project": ("x",),
    "constraint_error": ("x",),
    "to_tangent": ("x", "v"),
    "egrad_to_rgrad": ("x", "g"),
    "retract": ("x", "v"),
    "exp": ("x", "v"),
    "log": ("x", "y"),
    "distance": ("x", "y"),
    "transport": ("x", "y", "v"),
    "inner": ("x", "u", "v"),
    "random_tangent": ("key", "x"),
}


# Points and tangent vectors: one array per factor (dtypes checked by the factors).
_Tree = PyTree[Shaped[ArrayLike, "..."]]


class Product(AbstractManifold):
    """The Riemannian product $M_1 \\times \\dots \\times M_k$.

    A point is a **tuple** of arrays, one per factor, `(x_1, ..., x_k)`, with `x_i` of shape
    `batch + manifolds[i].point_shape` (the same batch shape for every factor); tangent
    vectors are tuples of the same shapes. `point_shape` is the tuple of the factors' point
    shapes. Every map acts factor by factor; `inner` is the sum of the factors' inner products
    (the product metric), `distance` the root of the sum of squared distances, and
    `constraint_error` the largest of the factors'. `exp`, `log` and `distance` need them on
    every factor. The retraction is as good as the worst factor's; `transport` is isometric
    when every factor's is.

    **Checks.** Every argument must be a tuple with one array per factor, each of its
    factor's trailing shape (`ValueError`) and a real float (`TypeError`); each factor then
    checks its own points, with its own messages (which name the factor's call). With
    `checks=False` the factors' value checks are off too.

    **Arguments:**

    - `manifolds`: a tuple of manifolds.
    - `checks`: `False` turns off the value checks, on every factor (keyword-only).

    **Raises:** `ValueError` for an empty `manifolds` or one that holds a non-manifold.

    **Example:**

    ```pycon
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import structjax.manifolds as sm
    >>> m = sm.Product((sm.Sphere(3), sm.Euclidean((2,))))
    >>> x = m.random_point(jax.random.key(0), (4,))
    >>> y = m.retract(x, m.random_tangent(jax.random.key(1), x))
    >>> print([a.shape for a in y], bool(jnp.all(m.constraint_error(y) < 1e-12)))
    [(4, 3), (4, 2)] True

    ```
    """

    manifolds: tuple[AbstractManifold, ...]
    checks: bool = eqx.field(static=True)

    def __init__(self, manifolds: Iterable[Any], *, checks: bool = True):
        # `Iterable[Any]`, not of manifolds: the check below names a wrong factor in its own error.
        manifolds = tuple(manifolds)
        if not manifolds or not all(isinstance(m, AbstractManifold) for m in manifolds):
            raise ValueError(
                f"`Product(manifolds={manifolds!r})` needs a non-empty tuple of manifolds."
            )
        if not checks:
            manifolds = tuple(dataclasses.replace(m, checks=False) for m in manifolds)
        self.manifolds = manifolds
        self.checks = checks

    @property
    def point_shape(self) -> tuple[tuple[int, ...], ...]:  # pyright: ignore[reportIncompatibleMethodOverride]  # one shape per factor
        return tuple(tuple(m.point_shape) for m in self.manifolds)

    def describe(self) -> str:
        return f"Product(({', '.join(m.describe() for m in self.manifolds)}))"

    def check_shape(self, x: PyTree[ArrayLike], name: str = "x", call: str | None = None) -> None:
        """Raise a `ValueError` unless `x` is a tuple with one array per factor, each with
        that factor's trailing shape."""
        k = len(self.manifolds)
        if not isinstance(x, (tuple, list)) or len(x) != k:
            where = f"`{call}` needs" if call is not None else f"Product of {k} manifolds takes"
            raise ValueError(
                f"{where} `{name}` as a tuple of {k} arrays, got {type(x).__name__}"
                + (f" of length {len(x)}." if isinstance(x, (tuple, list)) else ".")
            )
        for i, (m, xi) in enumerate(zip(self.manifolds, x)):
            m.check_shape(xi, f"{name}[{i}]", call)

    def check_point(self, x: _Tree, name: str = "x", call: str | None = None) -> _Tree:
        """`x`, each factor checked by its own `check_point` (see `AbstractManifold`)."""
        call = call if call is not None else f"{self.describe()}.check_point({name})"
        self.check_shape(x, name, call)
        return tuple(
            m.check_point(xi, f"{name}[{i}]", call)
            for i, (m, xi) in enumerate(zip(self.manifolds, x))
        )

    def _map(self, method, *args):
        names = _ARGUMENTS[method]
        call = f"{self.describe()}.{method}({', '.join(names)})"
        for name, a in zip(names, args):
            if name != "key":
                self.check_shape(a, name, call)
                check_real_floating(a, call, name)
        return tuple(getattr(m, method)(*a) for m, *a in zip(self.manifolds, *args))

    def project(self, x: _Tree) -> _Tree:
        return self._map("project", x)

    def to_tangent(self, x: _Tree, v: _Tree) -> _Tree:
        return self._map("to_tangent", x, v)

    def egrad_to_rgrad(self, x: _Tree, g: _Tree) -> _Tree:
        return self._map("egrad_to_rgrad", x, g)

    def retract(self, x: _Tree, v: _Tree) -> _Tree:
        return self._map("retract", x, v)

    def exp(self, x: _Tree, v: _Tree) -> _Tree:
        r"""The exponential map $\mathrm{Exp}_x(v)$: the geodesic from `x` with velocity `v`."""
        return self._map("exp", x, v)

    def log(self, x: _Tree, y: _Tree) -> _Tree:
        r"""The logarithm $\mathrm{Log}_x(y)$, the inverse of `exp`: a tangent vector at `x`."""
        return self._map("log", x, y)

    def transport(self, x: _Tree, y: _Tree, v: _Tree) -> _Tree:
        return self._map("transport", x, y, v)

    def inner(self, x: _Tree, u: _Tree, v: _Tree) -> _Tree:
        return sum(self._map("inner", x, u, v))

    def norm(self, x: _Tree, v: _Tree) -> _Tree:
        return jnp.sqrt(jnp.maximum(self.inner(x, v, v), 0.0))

    def distance(self, x: _Tree, y: _Tree) -> _Tree:
        r"""The geodesic distance $d(x, y) = \|\mathrm{Log}_x(y)\|_x$, one number per point."""
        return jnp.sqrt(sum(d**2 for d in self._map("distance", x, y)))

    def constraint_error(self, x: _Tree) -> _Tree:
        return jnp.max(jnp.stack(self._map("constraint_error", x)), axis=0)

    def random_point(
        self, key: PRNGKeyArray, shape: tuple[int, ...] = (), dtype: DTypeLike | None = None
    ) -> _Tree:
        keys = jax.random.split(key, len(self.manifolds))
        return tuple(m.random_point(k, shape, dtype) for m, k in zip(self.manifolds, keys))

    def random_tangent(self, key: PRNGKeyArray, x: _Tree) -> _Tree:
        keys = jax.random.split(key, len(self.manifolds))
        return self._map("random_tangent", keys, x)
