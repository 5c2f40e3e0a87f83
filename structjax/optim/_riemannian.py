"""Riemannian optimisers as optax gradient transformations.

A Riemannian step is: Euclidean gradient -> Riemannian gradient (`riemannian_gradient`) ->
a tangent direction (`scale_by_riemannian_momentum` or `scale_by_riemannian_adam`, which
carry their momentum from one point to the next by vector transport) -> the learning rate
(optax) -> `retract`, whose updates land `optax.apply_updates` on the retracted point.
"""

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optax
from jax.typing import ArrayLike
from jaxtyping import Array, PyTree

from ..manifolds._base import AbstractManifold


def _concrete(*xs) -> bool:
    """Whether hyperparameters are known now (not traced, as under `inject_hyperparams`)."""
    return not any(isinstance(x, jax.core.Tracer) for x in xs)


def _is_manifold_leaf(x) -> bool:
    return x is None or isinstance(x, AbstractManifold)


def _manifold_list(manifolds, params) -> tuple[list, jtu.PyTreeDef]:
    """One manifold (or None for Euclidean) per leaf of `params`, with clear errors."""
    leaves, treedef = jtu.tree_flatten(params)
    if manifolds is None or isinstance(manifolds, AbstractManifold):
        ms = [manifolds] * len(leaves)
    else:
        try:
            ms = treedef.flatten_up_to(manifolds)
        except (ValueError, TypeError) as e:
            mdef = jtu.tree_structure(manifolds, is_leaf=_is_manifold_leaf)
            raise ValueError(
                "`manifolds` must be one manifold, or a pytree of manifolds (None for "
                "Euclidean) with the structure of the parameters; got\n"
                f"  manifolds: {mdef}\n  params:    {treedef}"
            ) from e
        if not all(_is_manifold_leaf(m) for m in ms):
            raise ValueError(
                "`manifolds` must hold a manifold or None at each parameter leaf, got "
                f"{[type(m).__name__ for m in ms if not _is_manifold_leaf(m)]}."
            )
    for i, (m, leaf) in enumerate(zip(ms, leaves)):
        if m is not None:
            m.check_shape(leaf, f"parameter leaf {i}")
    return ms, treedef


def _map(fn, manifolds, params, *trees):
    """`fn(manifold_or_None, param_leaf, *leaves)` over the leaves, as a tree like `params`."""
    ms, treedef = _manifold_list(manifolds, params)
    flat = [treedef.flatten_up_to(t) for t in (params, *trees)]
    return treedef.unflatten([fn(m, *xs) for m, *xs in zip(ms, *flat)])


def _tolerance(dtype) -> float:
    return 1e-4 if jnp.finfo(dtype).bits <= 32 else 1e-8


def _check_on_manifold(manifolds, params):
    """Refuse a starting point off its manifold: at once if concrete, else at run time."""
    ms, treedef = _manifold_list(manifolds, params)
    ok = jnp.asarray(True)
    for i, (m, x) in enumerate(zip(ms, treedef.flatten_up_to(params))):
        if m is None:
            continue
        err = jnp.max(m.constraint_error(x))
        tol = _tolerance(x.dtype)
        if not isinstance(err, jax.core.Tracer):
            if not float(err) <= tol:
                raise ValueError(
                    f"Parameter leaf {i} is off its manifold {m}: constraint error "
                    f"{float(err):.3e} > {tol:g}. Start from `manifold.project(x)` or "
                    "`manifold.random_point(...)`."
                )
        else:
            ok = ok & (err <= tol)
    return eqx.error_if(ok, ~ok, "A parameter is off its manifold at `init`.")


class RiemannianGradientState(NamedTuple):
    checked: Array


def riemannian_gradient(manifolds=None) -> optax.GradientTransformation:
    """Euclidean gradients to Riemannian gradients (`manifold.egrad_to_rgrad`), leaf by
    leaf; `None` leaves pass through. Its `init` refuses parameters off their manifolds."""

    def init_fn(params):
        return RiemannianGradientState(_check_on_manifold(manifolds, params))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("`riemannian_gradient` needs `params` in `update`.")
        out = _map(lambda m, x, g: g if m is None else m.egrad_to_rgrad(x, g), manifolds, params,
                   updates)  # fmt: skip
        return out, state

    return optax.GradientTransformation(init_fn, update_fn)


def _transport(m, x_prev, x, v):
    return v if m is None else m.transport(x_prev, x, v)


def _per_point(m, x, u, v):
    """The squared-norm statistic of Adam: elementwise for Euclidean leaves, one number per
    point (broadcast back) for manifold leaves (Bécigneul & Ganea 2019, Alg. 1)."""
    if m is None:
        return u * v
    return m.inner(x, u, v)[(...,) + (None,) * len(m.point_shape)]


class RiemannianMomentumState(NamedTuple):
    momentum: PyTree
    previous: PyTree


def scale_by_riemannian_momentum(
    momentum: ArrayLike, nesterov: bool = False, manifolds=None
) -> optax.GradientTransformation:
    """Heavy-ball (or Nesterov) momentum on manifolds: the buffer is carried to the new
    point by `manifold.transport` before it is updated (Bécigneul & Ganea 2019, eq. 5;
    Absil, Mahony & Sepulchre 2008, Sec. 8.1)."""
    if _concrete(momentum) and momentum < 0:
        raise ValueError(f"`momentum` must be >= 0, got {momentum}.")

    def init_fn(params):
        return RiemannianMomentumState(jtu.tree_map(jnp.zeros_like, params), params)

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("`scale_by_riemannian_momentum` needs `params` in `update`.")
        mu = _map(lambda m, x, xp, v: _transport(m, xp, x, v), manifolds, params, state.previous,
                  state.momentum)  # fmt: skip
        mu = jtu.tree_map(lambda v, g: momentum * v + g, mu, updates)
        out = jtu.tree_map(lambda v, g: g + momentum * v, mu, updates) if nesterov else mu
        return out, RiemannianMomentumState(mu, params)

    return optax.GradientTransformation(init_fn, update_fn)


class RiemannianAdamState(NamedTuple):
    count: Array
    mu: PyTree
    nu: PyTree
    nu_max: PyTree
    previous: PyTree


def scale_by_riemannian_adam(
    b1: ArrayLike = 0.9, b2: ArrayLike = 0.999, eps: ArrayLike = 1e-8, amsgrad: bool = False,
    manifolds=None,
) -> optax.GradientTransformation:  # fmt: skip
    """Riemannian Adam (Bécigneul & Ganea, ICLR 2019, Algorithm 1): the first moment is
    transported to each new point; the second moment is $\\|g\\|_x^2$ per manifold point
    (so the direction stays tangent), elementwise on Euclidean leaves (plain Adam)."""
    if _concrete(b1, b2, eps) and not (0 <= b1 < 1 and 0 <= b2 < 1 and eps >= 0):
        raise ValueError(f"Adam needs 0 <= b1, b2 < 1 and eps >= 0, got {b1}, {b2}, {eps}.")

    def init_fn(params):
        zeros = jtu.tree_map(jnp.zeros_like, params)
        nu = _map(lambda m, x: jnp.zeros_like(x) if m is None else _per_point(m, x, x, x) * 0,
                  manifolds, params)  # fmt: skip
        return RiemannianAdamState(jnp.zeros((), jnp.int32), zeros, nu, nu, params)

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("`scale_by_riemannian_adam` needs `params` in `update`.")
        count = optax.safe_int32_increment(state.count)
        mu = _map(lambda m, x, xp, v: _transport(m, xp, x, v), manifolds, params, state.previous,
                  state.mu)  # fmt: skip
        mu = jtu.tree_map(lambda v, g: b1 * v + (1 - b1) * g, mu, updates)
        sq = _map(lambda m, x, g: _per_point(m, x, g, g), manifolds, params, updates)
        nu = jtu.tree_map(lambda n, s: b2 * n + (1 - b2) * s, state.nu, sq)
        k = count.astype(jnp.result_type(float))
        # AMSGrad keeps the running maximum of the bias-corrected second moment, as optax.
        nu_hat = jtu.tree_map(lambda n: n / (1 - b2**k).astype(n.dtype), nu)
        nu_max = jtu.tree_map(jnp.maximum, state.nu_max, nu_hat) if amsgrad else state.nu_max

        def direction(n_hat, v):
            return (v / (1 - b1**k).astype(v.dtype)) / (jnp.sqrt(n_hat) + eps)

        out = jtu.tree_map(direction, nu_max if amsgrad else nu_hat, mu)
        return out, RiemannianAdamState(count, mu, nu, nu_max, params)

    return optax.GradientTransformation(init_fn, update_fn)


def retract(manifolds=None) -> optax.GradientTransformation:
    """The last transformation of a Riemannian optimiser: turns a tangent step `u` into the
    update `R_x(u) - x`, so that `optax.apply_updates(x, updates)` lands on the retracted
    point (up to one rounding of the sum, which the next retraction removes)."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("`retract` needs `params` in `update`.")
        out = _map(lambda m, x, u: u if m is None else (m.retract(x, u) - x).astype(x.dtype),
                   manifolds, params, updates)  # fmt: skip
        return out, state

    return optax.GradientTransformation(init_fn, update_fn)


def riemannian_sgd(
    learning_rate: optax.ScalarOrSchedule,
    momentum: ArrayLike = 0.0,
    nesterov: bool = False,
    manifolds=None,
) -> optax.GradientTransformation:
    """Riemannian SGD with optional (transported) heavy-ball or Nesterov momentum
    (Bonnabel 2013; Bécigneul & Ganea 2019).

    **Arguments:**

    - `learning_rate`: a float or an optax schedule.
    - `momentum`, `nesterov`: as `optax.sgd`.
    - `manifolds`: one manifold, or a pytree of manifolds (None = Euclidean) with the
        structure of the parameters (see `structjax.manifolds.manifolds_of`).
    """
    parts = [riemannian_gradient(manifolds)]
    if momentum:
        parts.append(scale_by_riemannian_momentum(momentum, nesterov, manifolds))
    parts += [optax.scale_by_learning_rate(learning_rate), retract(manifolds)]
    return optax.chain(*parts)


def riemannian_adam(
    learning_rate: optax.ScalarOrSchedule,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    amsgrad: bool = False,
    manifolds=None,
) -> optax.GradientTransformation:
    """Riemannian Adam / AMSGrad (Bécigneul & Ganea, "Riemannian adaptive optimization
    methods", ICLR 2019): moments transported, second moment per manifold point.

    **Arguments:** as `optax.adam`, plus `amsgrad` and `manifolds` (as `riemannian_sgd`).
    """
    return optax.chain(
        riemannian_gradient(manifolds),
        scale_by_riemannian_adam(b1, b2, eps, amsgrad, manifolds),
        optax.scale_by_learning_rate(learning_rate),
        retract(manifolds),
    )
