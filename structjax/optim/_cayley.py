"""Cayley SGD and Cayley Adam on the Stiefel manifold (Li, Fuxin & Todorovic 2020)."""

import dataclasses

import jax.numpy as jnp
import jax.tree_util as jtu
import optax
from jax.typing import ArrayLike

from .._guards import hyperparameter
from .._linalg import mm
from ..manifolds import Orthogonal, Product, SpecialOrthogonal, Stiefel
from ._riemannian import _LR, _describe
from ._step import riemannian_step
from ._tree import as_dtype, cast_like, finite_nonnegative, is_manifold_leaf, tree_map

_CAYLEY_MANIFOLDS = (Stiefel, Orthogonal, SpecialOrthogonal)


def _with_cayley(manifolds, iterations: int):
    """The same manifolds, with the iterative Cayley retraction on every Stiefel-type leaf."""

    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(
            f"The Cayley optimisers need `iterations` a positive integer, got {iterations!r}."
        )

    def swap(m):
        if m is None:
            return None
        if isinstance(m, Product):
            return Product(tuple(swap(f) for f in m.manifolds))
        if not isinstance(m, _CAYLEY_MANIFOLDS):
            raise ValueError(
                "The Cayley optimisers work on Stiefel, Orthogonal and SpecialOrthogonal "
                f"(or None for Euclidean leaves), got {m}; use `riemannian_sgd`/"
                "`riemannian_adam` for other manifolds."
            )
        return dataclasses.replace(m, retraction="cayley_iterative", cayley_iterations=iterations)

    if manifolds is None or not is_manifold_leaf(manifolds):
        return jtu.tree_map(swap, manifolds, is_leaf=is_manifold_leaf)
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


def _q_range(v):
    return (v > 0) & (v < 1)


def _bound(q, eps, call, checks):
    """`bound(m, x, u)`: Li et al.'s step bound, with `q` and `eps` checked."""
    q = hyperparameter(q, call, "q", _q_range, "in (0, 1)", checks=checks)
    eps = hyperparameter(eps, call, "eps", finite_nonnegative, "finite and >= 0", checks=checks)

    def bound(m, x, u):
        if m is None:
            return u
        norm = _cayley_generator_norm(x, u)
        factor = jnp.minimum(1.0, 2 * as_dtype(q, norm) / (norm + as_dtype(eps, norm)))
        return u * factor.astype(u.dtype)[..., None, None]

    return bound


def scale_by_cayley_bound(
    q: ArrayLike = 0.5, eps: ArrayLike = 1e-8, manifolds=None, *, checks: bool = True,
    _call: str = "scale_by_cayley_bound",
):  # fmt: skip
    """Li et al.'s step bound (2020, Algorithms 1 and 2): shrink a Stiefel step `u` so that
    its Cayley generator has $\\|W\\|_F \\le 2q$, which keeps the fixed-point iteration of the
    iterative Cayley retraction contracting (factor $\\le q$). Euclidean leaves pass through.

    **Raises:** a `ValueError` (or, traced, a runtime error) unless $0 < q < 1$ and `eps`
    is finite and >= 0.
    """
    bound = _bound(q, eps, _call, checks)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(f"`{_call}.update` needs `params`.")

        return cast_like(tree_map(bound, manifolds, params, updates), params), state

    return optax.GradientTransformation(init_fn, update_fn)


def cayley_sgd(
    learning_rate: optax.ScalarOrSchedule,
    momentum: ArrayLike = 0.9,
    nesterov: bool = False,
    q: ArrayLike = 0.5,
    iterations: int = 2,
    manifolds=None,
    *,
    checks: bool = True,
) -> optax.GradientTransformation:
    """Cayley SGD with momentum (Li, Fuxin & Todorovic, "Efficient Riemannian optimization on
    the Stiefel manifold via the Cayley transform", ICLR 2020, Algorithm 1): momentum kept
    tangent by projection, the step bounded by $\\|W\\| \\le 2q$, and the iterative Cayley
    retraction with `iterations` fixed-point steps.

    **Arguments:** as `riemannian_sgd`, plus `q` in (0, 1) (the step bound) and
    `iterations` >= 1; `manifolds` must be Stiefel, Orthogonal or SpecialOrthogonal (or
    Products of them; None for Euclidean).

    **Raises:** as `riemannian_sgd`, and a `ValueError` (or, traced, a runtime error) for
    `q` outside (0, 1), a `ValueError` for `iterations` < 1 or another manifold.
    Dtypes and `optax.apply_if_finite` as `riemannian_sgd`.
    """
    ms = _with_cayley(manifolds, iterations)
    call = _describe("cayley_sgd", manifolds)
    return riemannian_step(
        learning_rate, adam=False, momentum=momentum, nesterov=nesterov,
        bound=_bound(q, 1e-8, call, checks), manifolds=ms, checks=checks, call=call,
        lr_ok=finite_nonnegative, lr_expected=_LR,
    )  # fmt: skip


def cayley_adam(
    learning_rate: optax.ScalarOrSchedule,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.99,
    eps: ArrayLike = 1e-8,
    q: ArrayLike = 0.5,
    iterations: int = 2,
    manifolds=None,
    *,
    checks: bool = True,
) -> optax.GradientTransformation:
    """Cayley Adam (Li, Fuxin & Todorovic 2020, Algorithm 2): Adam with the second moment
    $\\|G\\|^2$ per Stiefel matrix, the first moment kept tangent by projection, the step
    bounded by $\\|W\\| \\le 2q$, and the iterative Cayley retraction. (As optax, `eps` is
    added outside the square root.)

    **Arguments and Raises:** as `cayley_sgd`, with `b1`, `b2`, `eps` as `riemannian_adam`.
    """
    ms = _with_cayley(manifolds, iterations)
    call = _describe("cayley_adam", manifolds)
    return riemannian_step(
        learning_rate, adam=True, b1=b1, b2=b2, eps=eps, bound=_bound(q, 1e-8, call, checks),
        manifolds=ms, checks=checks, call=call, lr_ok=finite_nonnegative, lr_expected=_LR,
    )  # fmt: skip
