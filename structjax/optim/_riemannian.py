"""Riemannian optimisers as optax gradient transformations.

A Riemannian step is: Euclidean gradient -> Riemannian gradient (`riemannian_gradient`) ->
a tangent direction (`scale_by_riemannian_momentum` or `scale_by_riemannian_adam`, which
carry their momentum from one point to the next by vector transport) -> the learning rate
-> `retract`, whose updates land `optax.apply_updates` on the retracted point.

Every structjax optimiser follows one policy (see `structjax.optim`): hyperparameters are
checked where they are used (eagerly, or at run time under `jit` and
`optax.inject_hyperparams`), `init` refuses a point off its manifold, integer and complex
parameters are refused, and 16-bit floats are computed in float32.
"""

from typing import NamedTuple

import jax.numpy as jnp
import optax
from jax.typing import ArrayLike
from jaxtyping import Array, PyTree

from .._guards import hyperparameter
from ._step import _retract_delta, riemannian_step
from ._tree import (
    as_dtype,
    cast_like,
    check_on_manifolds,
    check_params,
    copy_params,
    finite_nonnegative,
    manifold_list,
    tree_map,
    upcast,
    use_flag,
    zeros_in_compute_dtype,
)


def _unit_interval(v):
    return (v >= 0) & (v < 1)


class RiemannianGradientState(NamedTuple):
    """`checked`: True; it carries `init`'s refusal of a point off its manifold, and every
    update depends on it (so the check lives in any compiled program that uses the step)."""

    checked: Array


def riemannian_gradient(manifolds=None, *, checks: bool = True, _call: str | None = None
                        ) -> optax.GradientTransformation:  # fmt: skip
    """Euclidean gradients to Riemannian gradients (`manifold.egrad_to_rgrad`), leaf by
    leaf; `None` leaves pass through.

    **Arguments:**

    - `manifolds`: one manifold, or a pytree of manifolds (None = Euclidean) matching the
        parameters up to its leaves (a `Product` leaf takes a tuple of arrays).
    - `checks`: `False` skips the check of the starting point.

    **Raises:** at `init`, a `ValueError` (eagerly) or a runtime error (under `jit`) for a
    parameter off its manifold, by its manifold's tolerance for the dtype; a `TypeError` for
    integer, boolean or complex parameters; a `ValueError` for shapes that do not match.
    """
    call = _call or f"riemannian_gradient(manifolds={manifolds})"

    def init_fn(params):
        check_params(params, f"{call}.init")
        return RiemannianGradientState(check_on_manifolds(manifolds, params, f"{call}.init",
                                                          checks))  # fmt: skip

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(f"`{call}.update` needs `params`.")
        check_params(updates, f"{call}.update", "updates")
        check_params(params, f"{call}.update")
        out = tree_map(lambda m, x, g: g if m is None else m.egrad_to_rgrad(x, g), manifolds,
                       params, updates)  # fmt: skip
        out = cast_like(out, params)
        return (use_flag(out, state.checked) if checks else out), state

    return optax.GradientTransformation(init_fn, update_fn)


def transport(m, x_prev, x, v):
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
    momentum: ArrayLike, nesterov: bool = False, manifolds=None, *, checks: bool = True,
    _call: str = "scale_by_riemannian_momentum",
) -> optax.GradientTransformation:  # fmt: skip
    """Heavy-ball (or Nesterov) momentum on manifolds: the buffer is carried to the new
    point by `manifold.transport` before it is updated (Bécigneul & Ganea 2019, eq. 5;
    Absil, Mahony & Sepulchre 2008, Sec. 8.1). The buffer is float32 for 16-bit params.

    **Raises:** a `ValueError` (or, traced, a runtime error) unless `momentum` is in [0, 1).
    """
    momentum = hyperparameter(momentum, f"{_call}(momentum=...)", "momentum", _unit_interval,
                              "in [0, 1)", checks=checks)  # fmt: skip

    def init_fn(params):
        return RiemannianMomentumState(zeros_in_compute_dtype(params), copy_params(params))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(f"`{_call}.update` needs `params`.")

        def step(m, x, xp, v, g):
            mu = as_dtype(momentum, v)
            v = transport(m, xp, x, v) * mu + g
            return v, (g + mu * v if nesterov else v)

        mu, out = tree_map(step, manifolds, params, state.previous, state.momentum, updates,
                           n_out=2)  # fmt: skip
        return cast_like(out, params), RiemannianMomentumState(mu, copy_params(params))

    return optax.GradientTransformation(init_fn, update_fn)


class RiemannianAdamState(NamedTuple):
    count: Array
    mu: PyTree
    nu: PyTree
    nu_max: PyTree
    previous: PyTree


def scale_by_riemannian_adam(
    b1: ArrayLike = 0.9, b2: ArrayLike = 0.999, eps: ArrayLike = 1e-8, amsgrad: bool = False,
    manifolds=None, *, checks: bool = True, _call: str = "scale_by_riemannian_adam",
) -> optax.GradientTransformation:  # fmt: skip
    """Riemannian Adam (Bécigneul & Ganea, ICLR 2019, Algorithm 1): the first moment is
    transported to each new point; the second moment is $\\|g\\|_x^2$ per manifold point
    (so the direction stays tangent), elementwise on Euclidean leaves (plain Adam). The
    moments are float32 for 16-bit params.

    **Raises:** a `ValueError` (or, traced, a runtime error) unless `b1` and `b2` are in
    [0, 1) and `eps` is finite and >= 0.
    """
    b1 = hyperparameter(b1, f"{_call}(b1=...)", "b1", _unit_interval, "in [0, 1)", checks=checks)
    b2 = hyperparameter(b2, f"{_call}(b2=...)", "b2", _unit_interval, "in [0, 1)", checks=checks)
    eps = hyperparameter(eps, f"{_call}(eps=...)", "eps", finite_nonnegative, "finite and >= 0",
                         checks=checks)  # fmt: skip

    def init_fn(params):
        zeros = zeros_in_compute_dtype(params)
        nu = tree_map(lambda m, x: jnp.zeros_like(x) if m is None else _per_point(m, x, x, x) * 0,
                      manifolds, params)  # fmt: skip
        return RiemannianAdamState(jnp.zeros((), jnp.int32), zeros, nu, nu, copy_params(params))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(f"`{_call}.update` needs `params`.")
        count = jnp.asarray(optax.safe_int32_increment(state.count))
        k = count.astype(jnp.result_type(float))

        def step(m, x, xp, v, n, n_max, g):
            a1, a2, e = as_dtype(b1, v), as_dtype(b2, v), as_dtype(eps, v)
            v = a1 * transport(m, xp, x, v) + (1 - a1) * g
            n = a2 * n + (1 - a2) * _per_point(m, x, g, g)
            # AMSGrad keeps the running maximum of the bias-corrected second moment, as optax.
            n_hat = n / (1 - as_dtype(b2, k) ** k).astype(n.dtype)
            n_max = jnp.maximum(n_max, n_hat) if amsgrad else n_max
            v_hat = v / (1 - as_dtype(b1, k) ** k).astype(v.dtype)
            return v, n, n_max, v_hat / (jnp.sqrt(n_max if amsgrad else n_hat) + e)

        mu, nu, nu_max, out = tree_map(step, manifolds, params, state.previous, state.mu,
                                       state.nu, state.nu_max, updates, n_out=4)  # fmt: skip
        out = cast_like(out, params)
        return out, RiemannianAdamState(count, mu, nu, nu_max, copy_params(params))

    return optax.GradientTransformation(init_fn, update_fn)


def retract(manifolds=None, *, _call: str = "retract") -> optax.GradientTransformation:
    """The last transformation of a Riemannian optimiser: turns a tangent step `u` into the
    update `R_x(u) - x`, so that `optax.apply_updates(x, updates)` lands on the retracted
    point (up to one rounding of the sum, which the next retraction removes)."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(f"`{_call}.update` needs `params`.")
        ms, _, treedef = manifold_list(manifolds, params)
        xs, us = treedef.flatten_up_to(params), treedef.flatten_up_to(updates)
        out = [u if m is None else _retract_delta(m, upcast(jnp.asarray(x)), upcast(u), x)
               for m, x, u in zip(ms, xs, us)]  # fmt: skip
        return cast_like(treedef.unflatten(out), params), state

    return optax.GradientTransformation(init_fn, update_fn)


_LR = "finite and >= 0 (to maximise, minimise the negated loss)"


def _describe(name, manifolds):
    return f"{name}(manifolds={manifolds})" if manifolds is not None else f"{name}(...)"


def riemannian_sgd(
    learning_rate: optax.ScalarOrSchedule,
    momentum: ArrayLike = 0.0,
    nesterov: bool = False,
    manifolds=None,
    *,
    checks: bool = True,
) -> optax.GradientTransformation:
    """Riemannian SGD with optional (transported) heavy-ball or Nesterov momentum
    (Bonnabel 2013; Bécigneul & Ganea 2019).

    **Arguments:**

    - `learning_rate`: a float or an optax schedule, finite and >= 0.
    - `momentum`: in [0, 1) (a Python 0 builds no momentum buffer); `nesterov`: as `optax.sgd`.
    - `manifolds`: one manifold, or a pytree of manifolds (None = Euclidean) with the
        structure of the parameters (see `structjax.manifolds.manifolds_of`); a `Product`
        leaf takes a tuple of arrays.
    - `checks`: `False` drops the run-time checks (starting point, schedule values,
        traced hyperparameters); static checks (shapes, dtypes) stay.

    **Raises:** `ValueError` (eagerly; a runtime error under `jit` and
    `optax.inject_hyperparams`) for a learning rate (or a schedule's value) that is NaN,
    infinite or negative, a `momentum` outside [0, 1), a starting point off its manifold;
    `TypeError` for integer or complex parameters.

    One transformation, batched over the leaves of one manifold, shape and dtype (see
    `riemannian_adam`). Float16/bfloat16 parameters are computed in float32 (the momentum
    buffer too) and
    their updates cast back. With `optax.apply_if_finite(opt, n)` a step whose gradient is
    not finite is skipped and the state kept as it was; the next finite step proceeds as if
    the bad one had never come.

    ```python
    import jax.numpy as jnp, optax, structjax.manifolds as sm, structjax.optim as so
    opt = so.riemannian_sgd(0.1, momentum=0.9, manifolds=sm.Sphere(3))
    x = jnp.array([1.0, 0.0, 0.0])
    updates, state = opt.update(jnp.array([0.0, 1.0, 0.0]), opt.init(x), x)
    x = optax.apply_updates(x, updates)  # on the sphere
    ```
    """
    return riemannian_step(
        learning_rate, adam=False, momentum=momentum, nesterov=nesterov, manifolds=manifolds,
        checks=checks, call=_describe("riemannian_sgd", manifolds), lr_ok=finite_nonnegative,
        lr_expected=_LR,
    )  # fmt: skip


def riemannian_adam(
    learning_rate: optax.ScalarOrSchedule,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    amsgrad: bool = False,
    manifolds=None,
    *,
    checks: bool = True,
) -> optax.GradientTransformation:
    """Riemannian Adam / AMSGrad (Bécigneul & Ganea, "Riemannian adaptive optimization
    methods", ICLR 2019): moments transported, second moment per manifold point (per factor
    of a `Product`, as the paper's products).

    **Arguments:** as `optax.adam` (`b1`, `b2` in [0, 1), `eps` finite and >= 0), plus
    `amsgrad`, and `manifolds`, `checks` as `riemannian_sgd`.

    **Raises:** as `riemannian_sgd`, and for `b1`, `b2` or `eps` out of range.

    It is one transformation, equal to the chain `riemannian_gradient`,
    `scale_by_riemannian_adam`, the learning rate and `retract`, but batched: the geometry of
    the leaves that share a manifold, shape and dtype runs once per group, and its state
    (`RiemannianStepState`) keeps the moments stacked by group. Dtypes, NaN gradients
    (`optax.apply_if_finite`) as `riemannian_sgd`; the moments
    are float32 for 16-bit parameters.
    """
    return riemannian_step(
        learning_rate, adam=True, b1=b1, b2=b2, eps=eps, amsgrad=amsgrad, manifolds=manifolds,
        checks=checks, call=_describe("riemannian_adam", manifolds), lr_ok=finite_nonnegative,
        lr_expected=_LR,
    )  # fmt: skip
