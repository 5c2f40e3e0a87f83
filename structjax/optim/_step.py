"""One Riemannian step, batched over the leaves that share a manifold, shape and dtype.

`riemannian_sgd`, `riemannian_adam`, `cayley_sgd` and `cayley_adam` are this one
transformation: Riemannian gradient, direction (plain, momentum, Nesterov, Adam, AMSGrad),
learning rate, an optional step bound, retraction, as the chain of `riemannian_gradient`,
`scale_by_riemannian_*` and `retract` computes them, leaf for leaf. Here the leaves of one
group are stacked on a new leading axis once per step (manifolds batch over leading axes),
the geometry runs once per group, and the state keeps its moments stacked by group, so a
model of hundreds of weights compiles and runs a handful of retractions and transports
instead of one per weight. A stack has one sharding, though: for leaves laid out each on its
own devices, `batch=False` keeps every leaf apart (and its sharding; tests/scaleout measures
the all-gathers the stack costs otherwise).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike
from jaxtyping import Array

from .._guards import hyperparameters
from ._tree import (
    as_dtype,
    check_on_manifolds,
    check_params,
    groups,
    learning_rate_value,
    manifold_list,
    upcast,
    use_flag,
)


class RiemannianStepState(NamedTuple):
    r"""The state of `riemannian_sgd`, `riemannian_adam`, `cayley_sgd` and `cayley_adam`.

    The moments are kept by *group*: the leaves of one manifold, shape and dtype, stacked on a
    new leading axis in the order of the parameters' leaves (each Euclidean leaf alone,
    unstacked); an entry is None where the optimiser does not use it.

    **Arguments:**

    - `count`: steps taken, an int32 scalar (a schedule's argument, Adam's bias correction).
    - `checked`: a boolean scalar, `True`, carrying `init`'s refusal of a point off its
        manifold (every update depends on it).
    - `mu`: per group, the first moment (momentum buffer), float32 for 16-bit parameters.
    - `nu`: per group, the second moment (one number per manifold point).
    - `nu_max`: per group, the running maximum of the bias-corrected `nu` (AMSGrad).
    - `previous`: per group, the parameters the first moment sits at (to transport it from).
    - `slots`: per group of two or more, each leaf's position in the stack as int32 scalars
        (run-time data, so that XLA compiles one program that takes any leaf out of its stack);
        None for groups of one.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp, structjax.manifolds as sm, structjax.optim as so
    >>> state = so.riemannian_adam(0.1, manifolds=sm.Sphere(3)).init(jnp.asarray([1.0, 0.0, 0.0]))
    >>> print(int(state.count), state.mu[0].shape, state.nu[0].shape)
    0 (1, 3) (1, 1)

    ```
    """

    count: Array
    checked: Array
    mu: tuple
    nu: tuple
    nu_max: tuple
    previous: tuple
    slots: tuple


def _unit_interval(v):
    return (v >= 0) & (v < 1)


def _plan(manifolds, params, batch: bool):
    ms, _, treedef = manifold_list(manifolds, params)
    leaves = treedef.flatten_up_to(params)
    return ms, treedef, leaves, groups(ms, leaves) if batch else [[i] for i in range(len(ms))]


def _gather(leaves, idx, m, up: bool = True):
    """The group's leaves: stacked on a new axis for a manifold, the one leaf for None."""
    cast = upcast if up else (lambda x: x)
    if m is None:
        return cast(jnp.asarray(leaves[idx[0]]))
    return jnp.stack([cast(jnp.asarray(leaves[i])) for i in idx])


def _per_point(m, x, u):
    if m is None:
        return u * u
    return m.inner(x, u, u)[(...,) + (None,) * len(m.point_shape)]


def _retract_delta(m, x, u, like):
    """`R_x(u) - x` in the compute dtype (float32 for 16-bit points, whose retracted point is
    then rounded once, by `optax.apply_updates`)."""
    del like
    return m.retract(x, u) - x


def riemannian_step(
    learning_rate,
    *,
    adam: bool,
    momentum: ArrayLike = 0.0,
    nesterov: bool = False,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    amsgrad: bool = False,
    bound: Callable | None = None,
    manifolds=None,
    checks: bool = True,
    batch: bool = True,
    call: str,
    lr_ok: Callable,
    lr_expected: str,
) -> optax.GradientTransformation:
    """The batched Riemannian step (see the module docstring); `bound(m, x, u)` shrinks the
    scaled step `u` before the retraction (the Cayley optimisers' step bound); `batch=False`
    makes every leaf a group of its own (for leaves laid out each on its own devices: a
    stack has one sharding, which XLA would gather the leaves into)."""
    if not isinstance(batch, bool):
        raise TypeError(f"`{call}`: `batch` must be a bool, got {batch!r}.")
    lr_spec = [] if callable(learning_rate) else [(learning_rate, "learning_rate", lr_ok,
                                                   lr_expected)]  # fmt: skip
    if adam:
        b1, b2, eps, *lr = hyperparameters(
            [(b1, "b1", _unit_interval, "in [0, 1)"), (b2, "b2", _unit_interval, "in [0, 1)"),
             (eps, "eps", lambda v: (v >= 0) & (v < jnp.inf), "finite and >= 0"), *lr_spec],
            call, checks=checks)  # fmt: skip
        buffer = True
    else:
        momentum, *lr = hyperparameters(
            [(momentum, "momentum", _unit_interval, "in [0, 1)"), *lr_spec], call, checks=checks
        )
        # A Python 0 builds no buffer; an array (as under inject_hyperparams) always does.
        buffer = not (isinstance(momentum, (int, float)) and momentum == 0)
    if lr:
        learning_rate = lr[0]

    def init_fn(params):
        check_params(params, f"{call}.init")
        checked = check_on_manifolds(manifolds, params, f"{call}.init", checks)
        ms, _, leaves, gs = _plan(manifolds, params, batch)
        mu, nu, previous, slots = [], [], [], []
        for idx in gs:
            m = ms[idx[0]]
            x = _gather(leaves, idx, m)
            mu.append(jnp.zeros_like(x) if buffer else None)
            nu.append((jnp.zeros_like(x) if m is None else _per_point(m, x, x) * 0) if adam
                      else None)  # fmt: skip
            previous.append(_gather(leaves, idx, m, up=False) if buffer and m is not None
                            else None)  # fmt: skip
            slots.append(tuple(jnp.asarray(j, jnp.int32) for j in range(len(idx)))
                         if m is not None and len(idx) > 1 else None)  # fmt: skip
        return RiemannianStepState(
            jnp.zeros((), jnp.int32),
            checked,
            tuple(mu),
            tuple(nu),
            tuple(nu),
            tuple(previous),
            tuple(slots),
        )

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(f"`{call}.update` needs `params`.")
        check_params(updates, f"{call}.update", "updates")
        check_params(params, f"{call}.update")
        ms, treedef, leaves, gs = _plan(manifolds, params, batch)
        grads = treedef.flatten_up_to(updates)
        count = jnp.asarray(optax.safe_int32_increment(state.count))
        k = count.astype(jnp.result_type(float))
        lr = learning_rate_value(learning_rate, state.count, call, lr_ok, lr_expected, checks)
        out: list = [None] * len(leaves)
        mu, nu, nu_max, previous = [], [], [], []
        for g, idx in enumerate(gs):
            m = ms[idx[0]]
            x, grad = _gather(leaves, idx, m), _gather(grads, idx, m)
            r = grad if m is None else m.egrad_to_rgrad(x, grad)
            v = state.mu[g]
            if buffer and m is not None:
                v = m.transport(upcast(state.previous[g]), x, v)
            n = n_max = None
            if adam:
                a1, a2, e = as_dtype(b1, r), as_dtype(b2, r), as_dtype(eps, r)
                v = a1 * v + (1 - a1) * r
                n = a2 * state.nu[g] + (1 - a2) * _per_point(m, x, r)
                # AMSGrad keeps the running maximum of the bias-corrected second moment.
                n_hat = n / (1 - as_dtype(b2, k) ** k).astype(n.dtype)
                n_max = jnp.maximum(state.nu_max[g], n_hat) if amsgrad else state.nu_max[g]
                v_hat = v / (1 - as_dtype(b1, k) ** k).astype(v.dtype)
                d = v_hat / (jnp.sqrt(n_max if amsgrad else n_hat) + e)
            elif buffer:
                c = as_dtype(momentum, r)
                v = r + c * v
                d = r + c * v if nesterov else v
            else:
                d = r
            mu.append(v)
            nu.append(n)
            nu_max.append(n_max)
            previous.append(x.astype(jnp.result_type(leaves[idx[0]])) if buffer and m is not None
                            else None)  # fmt: skip
            step = d * -as_dtype(lr, d)
            if bound is not None:
                step = bound(m, x, step)
            delta = step if m is None else _retract_delta(m, x, step, leaves[idx[0]])
            if checks:
                delta = use_flag(delta, state.checked)
            for j, i in enumerate(idx):
                if m is None:
                    leaf = delta
                elif len(idx) == 1:
                    leaf = delta[0]
                else:
                    leaf = jax.lax.dynamic_index_in_dim(delta, state.slots[g][j], keepdims=False)
                out[i] = leaf.astype(jnp.result_type(leaves[i]))
        new = RiemannianStepState(count, state.checked, tuple(mu), tuple(nu),
                                  tuple(nu_max), tuple(previous), state.slots)  # fmt: skip
        return treedef.unflatten(out), new

    return optax.GradientTransformation(init_fn, update_fn)
