"""Certificates for manifolds: constraint error, retraction order, Riemannian gradients."""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..manifolds._base import AbstractManifold, Point


def constraint_error(manifold: AbstractManifold, x: Point) -> Float[Array, ""]:
    """The largest distance from the manifold over a batch of points (zero on it).

    Measures $\\max_i \\mathrm{err}(x_i)$, with $\\mathrm{err}$ the manifold's own
    `constraint_error` (for instance $\\|X^\\top X - I\\|_F$ on the Stiefel manifold,
    $|\\,\\|x\\|_2 - 1|$ on the sphere), over every point of the batch.

    **Arguments:**

    - `manifold`: a `structjax.manifolds` manifold.
    - `x`: a point or a batch of points, shape `(*batch, *manifold.shape)`.

    **Returns:** a scalar.

    **Raises:** `ValueError` (trace time) when `x`'s trailing shape is not the manifold's.

    **Example:**

    ```pycon
    >>> import jax
    >>> import structjax.check as sc, structjax.manifolds as sm
    >>> sphere = sm.Sphere(3)
    >>> x = sphere.random_point(jax.random.key(0))
    >>> print(bool(sc.constraint_error(sphere, x) < 1e-14))
    True

    ```
    """
    manifold.check_shape(x)
    return jnp.max(manifold.constraint_error(x))


class RetractionCheck(NamedTuple):
    """The result of `check_retraction`: the measured order of a retraction.

    **Arguments:**

    - `first_order`: a float.
    - `second_order`: a float.

    `first_order`: the fitted slope of $\\log|R_x(tv) - (x + tv)|$ against $\\log t$,
    at least 2 for any retraction (`inf` when the retraction is $x + v$ exactly);
    `second_order`: $|P_x \\ddot c(0)|$ for
    $c(t) = R_x(tv)$, the tangent part of the curve's acceleration, zero (to rounding) for a
    second-order retraction (Absil, Mahony & Sepulchre 2008, Prop. 5.5.5).

    **Example:**

    ```pycon
    >>> import jax
    >>> import structjax.check as sc, structjax.manifolds as sm
    >>> result = sc.check_retraction(sm.Sphere(3), jax.random.key(0))
    >>> print(isinstance(result, sc.RetractionCheck), bool(result.first_order > 1.9))
    True True

    ```
    """

    first_order: float
    second_order: float


def check_retraction(
    manifold: AbstractManifold,
    key: PRNGKeyArray,
    x: Point | None = None,
    ts: Sequence[float] = (1e-3, 3e-3, 1e-2, 3e-2),
) -> RetractionCheck:
    """Measure the order of `manifold.retract` at a random point along a random unit tangent.

    With $v$ a unit tangent at $x$ (in the manifold's metric), it fits the slope of
    $\\log\\|R_x(tv) - (x + tv)\\|_F$ against $\\log t$ over `ts` (at least 2 for any
    retraction) and measures $\\|P_x \\ddot c(0)\\|_F$ for $c(t) = R_x(tv)$ (zero for a
    second-order retraction; Absil, Mahony & Sepulchre 2008, Prop. 5.5.5).

    **Arguments:**

    - `manifold`: a `structjax.manifolds` manifold.
    - `key`: a PRNG key, for the point (when `x` is `None`) and the tangent.
    - `x`: the base point, shape `manifold.shape`; `None` draws one in float64.
    - `ts`: the step lengths of the fit, at least two positive floats.

    **Returns:** a `RetractionCheck(first_order, second_order)` of floats.

    **Example:**

    ```pycon
    >>> import jax
    >>> import structjax.check as sc, structjax.manifolds as sm
    >>> first, second = sc.check_retraction(sm.Sphere(3), jax.random.key(0))
    >>> print(bool(first > 1.9), bool(second < 1e-12))
    True True

    ```
    """
    kx, kv = jax.random.split(key)
    if x is None:
        x = manifold.random_point(kx, dtype=jnp.float64)
    v = manifold.random_tangent(kv, x)
    v = v / manifold.norm(x, v)
    errs = [float(jnp.linalg.norm(manifold.retract(x, t * v) - (x + t * v))) for t in ts]
    if max(errs) <= 1e-15 * max(ts):  # R(x, v) = x + v exactly (a flat manifold)
        slope = float("inf")
    else:
        errs = np.maximum(np.asarray(errs), 1e-300)
        slope = float(np.polyfit(np.log(ts), np.log(errs), 1)[0])
    curve = lambda t: manifold.retract(x, t * v)  # noqa: E731
    acceleration = jax.jacfwd(jax.jacfwd(curve))(jnp.zeros((), v.dtype))
    second = float(jnp.linalg.norm(manifold.to_tangent(x, acceleration)))
    return RetractionCheck(slope, second)


def check_rgrad(
    manifold: AbstractManifold,
    f: Callable[[Array], Array],
    key: PRNGKeyArray,
    x: Point | None = None,
    t: float = 1e-5,
) -> float:
    """Relative mismatch between the Riemannian gradient and a central finite difference of
    `f` along a retraction curve: $|\\frac{f(R_x(tu)) - f(R_x(-tu))}{2t} -
    \\langle \\mathrm{grad} f, u\\rangle_x| / \\|\\mathrm{grad} f\\|_x$ for a random unit
    tangent $u$. $O(t^2)$ for a correct `egrad_to_rgrad`; order 1 for a wrong one.

    **Arguments:**

    - `manifold`: a `structjax.manifolds` manifold.
    - `f`: a scalar function of one point (defined on the embedding space).
    - `key`: a PRNG key, for the point (when `x` is `None`) and the direction.
    - `x`: the point, shape `manifold.shape`; `None` draws one in float64.
    - `t`: the finite-difference step.

    **Returns:** a float.

    **Example:**

    ```pycon
    >>> import jax
    >>> import structjax.check as sc, structjax.manifolds as sm
    >>> mismatch = sc.check_rgrad(sm.Sphere(3), lambda x: x[0] ** 2, jax.random.key(1))
    >>> print(bool(mismatch < 1e-8))
    True

    ```
    """
    kx, ku = jax.random.split(key)
    if x is None:
        x = manifold.random_point(kx, dtype=jnp.float64)
    u = manifold.random_tangent(ku, x)
    u = u / manifold.norm(x, u)
    rgrad = manifold.egrad_to_rgrad(x, jax.grad(f)(x))
    fd = (f(manifold.retract(x, t * u)) - f(manifold.retract(x, -t * u))) / (2 * t)
    return float(jnp.abs(fd - manifold.inner(x, rgrad, u)) / manifold.norm(x, rgrad))
