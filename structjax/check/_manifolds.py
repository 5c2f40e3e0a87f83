"""Certificates for manifolds: constraint error, retraction order, Riemannian gradients."""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ..manifolds._base import AbstractManifold, Point


def constraint_error(manifold: AbstractManifold, x: Point) -> Float[Array, ""]:
    """The largest distance from the manifold over a batch of points (zero on it)."""
    manifold.check_shape(x)
    return jnp.max(manifold.constraint_error(x))


class RetractionCheck(NamedTuple):
    """`first_order`: the fitted slope of $\\log|R_x(tv) - (x + tv)|$ against $\\log t$,
    at least 2 for any retraction (`inf` when the retraction is $x + v$ exactly);
    `second_order`: $|P_x \\ddot c(0)|$ for
    $c(t) = R_x(tv)$, the tangent part of the curve's acceleration, zero (to rounding) for a
    second-order retraction (Absil, Mahony & Sepulchre 2008, Prop. 5.5.5)."""

    first_order: float
    second_order: float


def check_retraction(
    manifold: AbstractManifold,
    key: PRNGKeyArray,
    x: Point | None = None,
    ts=(1e-3, 3e-3, 1e-2, 3e-2),
) -> RetractionCheck:
    """Measure the order of `manifold.retract` at a random point along a random unit tangent.

    **Returns:** a `RetractionCheck(first_order, second_order)` of floats.
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

    - `f`: a scalar function of one point (defined on the embedding space).

    **Returns:** a float.
    """
    kx, ku = jax.random.split(key)
    if x is None:
        x = manifold.random_point(kx, dtype=jnp.float64)
    u = manifold.random_tangent(ku, x)
    u = u / manifold.norm(x, u)
    rgrad = manifold.egrad_to_rgrad(x, jax.grad(f)(x))
    fd = (f(manifold.retract(x, t * u)) - f(manifold.retract(x, -t * u))) / (2 * t)
    return float(jnp.abs(fd - manifold.inner(x, rgrad, u)) / manifold.norm(x, rgrad))
