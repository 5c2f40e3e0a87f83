"""Cayley SGD and Cayley Adam on the Stiefel manifold (Li, Fuxin & Todorovic 2020)."""

import dataclasses

import jax.numpy as jnp
import jax.tree_util as jtu
import optax
from jax.typing import ArrayLike

from ..manifolds import Orthogonal, SpecialOrthogonal, Stiefel
from ..manifolds._base import mm
from ._riemannian import (
    _is_manifold_leaf,
    _map,
    retract,
    riemannian_gradient,
    scale_by_riemannian_adam,
    scale_by_riemannian_momentum,
)

_CAYLEY_MANIFOLDS = (Stiefel, Orthogonal, SpecialOrthogonal)


def _with_cayley(manifolds, iterations: int):
    """The same manifolds, with the iterative Cayley retraction on every Stiefel-type leaf."""

    def swap(m):
        if m is None:
            return None
        if not isinstance(m, _CAYLEY_MANIFOLDS):
            raise ValueError(
                "The Cayley optimisers work on Stiefel, Orthogonal and SpecialOrthogonal "
                f"(or None for Euclidean leaves), got {m}; use `riemannian_sgd`/"
                "`riemannian_adam` for other manifolds."
            )
        return dataclasses.replace(m, retraction="cayley_iterative", cayley_iterations=iterations)

    if manifolds is None or not _is_manifold_leaf(manifolds):
        return jtu.tree_map(swap, manifolds, is_leaf=_is_manifold_leaf)
    return swap(manifolds)


def _cayley_generator_norm(x, u):
    """$\\|W\\|_F$ for the skew generator $W = \\hat W - \\hat W^\\top$,
    $\\hat W = u x^\\top - \\tfrac12 x x^\\top u x^\\top$ (Li et al. 2020, eq. 6), without
    forming the n x n matrix: with $D = u - \\tfrac12 x (x^\\top u)$, $W = D x^\\top - x D^\\top$
    and $\\|W\\|_F^2 = 2\\|D\\|_F^2 - 2\\,\\mathrm{tr}((D^\\top x)^2)$."""
    d = u - mm(0.5 * x, mm(jnp.swapaxes(x, -1, -2), u))
    a = mm(jnp.swapaxes(d, -1, -2), x)
    sq = 2 * jnp.sum(d * d, axis=(-2, -1)) - 2 * jnp.trace(mm(a, a), axis1=-2, axis2=-1)
    return jnp.sqrt(jnp.maximum(sq, 0.0))


def scale_by_cayley_bound(q: ArrayLike = 0.5, eps: ArrayLike = 1e-8, manifolds=None):
    """Li et al.'s step bound (2020, Algorithms 1 and 2): shrink a Stiefel step `u` so that
    its Cayley generator has $\\|W\\|_F \\le 2q$, which keeps the fixed-point iteration of the
    iterative Cayley retraction contracting. Euclidean leaves pass through."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("`scale_by_cayley_bound` needs `params` in `update`.")

        def bound(m, x, u):
            if m is None:
                return u
            factor = jnp.minimum(1.0, 2 * q / (_cayley_generator_norm(x, u) + eps))
            return u * factor.astype(u.dtype)[..., None, None]

        return _map(bound, manifolds, params, updates), state

    return optax.GradientTransformation(init_fn, update_fn)


def cayley_sgd(
    learning_rate: optax.ScalarOrSchedule,
    momentum: ArrayLike = 0.9,
    nesterov: bool = False,
    q: ArrayLike = 0.5,
    iterations: int = 2,
    manifolds=None,
) -> optax.GradientTransformation:
    """Cayley SGD with momentum (Li, Fuxin & Todorovic, "Efficient Riemannian optimization on
    the Stiefel manifold via the Cayley transform", ICLR 2020, Algorithm 1): momentum kept
    tangent by projection, the step bounded by $\\|W\\| \\le 2q$, and the iterative Cayley
    retraction with `iterations` fixed-point steps.

    **Arguments:** as `riemannian_sgd`, plus `q` (the step bound) and `iterations`;
    `manifolds` must be Stiefel, Orthogonal or SpecialOrthogonal (None for Euclidean).
    """
    ms = _with_cayley(manifolds, iterations)
    return optax.chain(
        riemannian_gradient(ms),
        scale_by_riemannian_momentum(momentum, nesterov, ms),
        optax.scale_by_learning_rate(learning_rate),
        scale_by_cayley_bound(q, manifolds=ms),
        retract(ms),
    )


def cayley_adam(
    learning_rate: optax.ScalarOrSchedule,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.99,
    eps: ArrayLike = 1e-8,
    q: ArrayLike = 0.5,
    iterations: int = 2,
    manifolds=None,
) -> optax.GradientTransformation:
    """Cayley Adam (Li, Fuxin & Todorovic 2020, Algorithm 2): Adam with the second moment
    $\\|G\\|^2$ per Stiefel matrix, the first moment kept tangent by projection, the step
    bounded by $\\|W\\| \\le 2q$, and the iterative Cayley retraction. (As optax, `eps` is
    added outside the square root.)"""
    ms = _with_cayley(manifolds, iterations)
    return optax.chain(
        riemannian_gradient(ms),
        scale_by_riemannian_adam(b1, b2, eps, False, ms),
        optax.scale_by_learning_rate(learning_rate),
        scale_by_cayley_bound(q, manifolds=ms),
        retract(ms),
    )
