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
    Manifolds,
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
    r"""The state of `riemannian_gradient`.

    **Arguments:**

    - `checked`: a boolean scalar, `True`. It carries `init`'s refusal of a point off its
        manifold, and every update depends on it, so the check lives in any compiled program
        that uses the step.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> import structjax.manifolds as sm, structjax.optim as so
    >>> so.riemannian_gradient(sm.Sphere(3)).init(jnp.asarray([1.0, 0.0, 0.0]))._fields
    ('checked',)

    ```
    """

    checked: Array


def riemannian_gradient(
    manifolds: Manifolds = None, *, checks: bool = True, _call: str | None = None
) -> optax.GradientTransformation:
    r"""Euclidean gradients to Riemannian gradients, leaf by leaf.

    For a parameter $x$ on a manifold $\mathcal M$ and its Euclidean gradient $\nabla f(x)$ it
    computes $\operatorname{grad} f(x) = $ `manifold.egrad_to_rgrad(x, g)` (for an embedded
    submanifold with the induced metric, the orthogonal projection of $\nabla f(x)$ onto the
    tangent space $T_x\mathcal M$; Absil, Mahony & Sepulchre 2008, Sec. 3.6.1). Euclidean
    (`None`) leaves pass through. It is the first link of a Riemannian chain, before a
    `scale_by_riemannian_*` block and `retract`.

    **Arguments:**

    - `manifolds`: one manifold, or a pytree of manifolds (`None` = Euclidean) matching the
        parameters up to its leaves (a `Product` leaf takes a tuple of arrays).
    - `checks`: `False` skips the check of the starting point (default `True`).

    **Returns:**

    An `optax.GradientTransformation` (its `update` needs `params`).

    **Raises:**

    At `init`, a `ValueError` (eagerly) or a runtime error (under `jit`) for a parameter off
    its manifold, by its manifold's tolerance for the dtype; a `TypeError` for integer, boolean
    or complex parameters; a `ValueError` for shapes that do not match, or for an `update`
    without `params`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> import structjax.manifolds as sm, structjax.optim as so
    >>> x = jnp.asarray([1.0, 0.0, 0.0])
    >>> opt = so.riemannian_gradient(sm.Sphere(3))
    >>> r, _ = opt.update(jnp.asarray([2.0, 1.0, 0.0]), opt.init(x), x)
    >>> print(bool(jnp.abs(x @ r) < 1e-12), r.tolist())  # tangent at x
    True [0.0, 1.0, 0.0]

    ```
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
    r"""The state of `scale_by_riemannian_momentum`.

    **Arguments:**

    - `momentum`: the buffer $v$, a pytree like the params (float32 for 16-bit leaves), tangent
        at `previous`.
    - `previous`: the params of the last step, to transport `momentum` from.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> import structjax.optim as so
    >>> so.scale_by_riemannian_momentum(0.9).init(jnp.zeros(2))._fields
    ('momentum', 'previous')

    ```
    """

    momentum: PyTree
    previous: PyTree


def scale_by_riemannian_momentum(
    momentum: ArrayLike, nesterov: bool = False, manifolds: Manifolds = None, *,
    checks: bool = True, _call: str = "scale_by_riemannian_momentum",
) -> optax.GradientTransformation:  # fmt: skip
    r"""Heavy-ball (or Nesterov) momentum on manifolds, with the buffer transported.

    With $\mathcal T_{x_{t-1}\to x_t}$ the manifold's vector transport and $g_t$ the incoming
    (Riemannian) gradient at $x_t$, it computes

    $$v_t = \beta\,\mathcal T_{x_{t-1}\to x_t}(v_{t-1}) + g_t, \qquad
    u_t = v_t\ \text{(heavy ball)}\ \text{or}\ u_t = g_t + \beta v_t\ \text{(Nesterov)},$$

    so the buffer lies in the tangent space of the current point before it is updated
    (Bécigneul & Ganea 2019, eq. 5; Absil, Mahony & Sepulchre 2008, Sec. 8.1). Euclidean leaves
    are `optax.trace`. The buffer is float32 for 16-bit params. Chain it after
    `riemannian_gradient`, before the learning rate and `retract`.

    **Arguments:**

    - `momentum`: $\beta \in [0, 1)$.
    - `nesterov`: use Nesterov's form, as `optax.trace` (default `False`).
    - `manifolds`: as `riemannian_gradient`.
    - `checks`: `False` drops the run-time check of a traced `momentum`.

    **Returns:**

    An `optax.GradientTransformation` whose state is a `RiemannianMomentumState`.

    **Raises:**

    A `ValueError` (or, traced, a runtime error) unless `momentum` is in [0, 1); a
    `ValueError` for an `update` without `params`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> import structjax.manifolds as sm, structjax.optim as so
    >>> m = sm.Sphere(3)
    >>> opt = optax.chain(
    ...     so.riemannian_gradient(m), so.scale_by_riemannian_momentum(0.9, manifolds=m),
    ...     optax.scale(-0.1), so.retract(m))
    >>> x = x0 = jnp.asarray([0.6, 0.0, 0.8]); state = opt.init(x)
    >>> for _ in range(10):
    ...     updates, state = opt.update(jnp.asarray([0.0, 0.0, 1.0]), state, x)  # f = x_3
    ...     x = optax.apply_updates(x, updates)
    >>> print(bool(jnp.abs(jnp.linalg.norm(x) - 1.0) < 1e-12), bool(x[2] < x0[2]))
    True True

    ```
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
    r"""The state of `scale_by_riemannian_adam`.

    **Arguments:**

    - `count`: steps taken, an int32 scalar (for the bias corrections).
    - `mu`: the first moment $m$, like the params, tangent at `previous`.
    - `nu`: the second moment $v$: one number per manifold point (shape `(*batch, 1, ..., 1)`),
        elementwise for Euclidean leaves.
    - `nu_max`: the running maximum of the bias-corrected `nu` (AMSGrad).
    - `previous`: the params of the last step, to transport `mu` from.

    Moments are float32 for 16-bit params.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> import structjax.optim as so
    >>> so.scale_by_riemannian_adam().init(jnp.zeros(2))._fields
    ('count', 'mu', 'nu', 'nu_max', 'previous')

    ```
    """

    count: Array
    mu: PyTree
    nu: PyTree
    nu_max: PyTree
    previous: PyTree


def scale_by_riemannian_adam(
    b1: ArrayLike = 0.9, b2: ArrayLike = 0.999, eps: ArrayLike = 1e-8, amsgrad: bool = False,
    manifolds: Manifolds = None, *, checks: bool = True, _call: str = "scale_by_riemannian_adam",
) -> optax.GradientTransformation:  # fmt: skip
    r"""Rescale updates by Riemannian Adam's moments (Bécigneul & Ganea 2019, Algorithm 1).

    With $g_t$ the incoming Riemannian gradient at $x_t$, $\mathcal T$ the vector transport and
    $\|\cdot\|_{x}$ the manifold's norm at $x$, it computes

    $$m_t = \beta_1\,\mathcal T_{x_{t-1}\to x_t}(m_{t-1}) + (1 - \beta_1)\,g_t, \qquad
    v_t = \beta_2\,v_{t-1} + (1 - \beta_2)\,\|g_t\|_{x_t}^2,$$

    $$u_t = \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \varepsilon}.$$

    The second moment is one number per manifold point, so $u_t$ stays tangent; on Euclidean
    leaves it is elementwise (plain `optax.scale_by_adam`). With `amsgrad`, the square root is
    of the running maximum of the bias-corrected $v_t$ (as optax). The moments are float32 for
    16-bit params. Chain it after `riemannian_gradient`, before the learning rate and `retract`.

    **Arguments:**

    - `b1`: $\beta_1 \in [0, 1)$, the decay of the first moment (default 0.9).
    - `b2`: $\beta_2 \in [0, 1)$, the decay of the second moment (default 0.999).
    - `eps`: $\varepsilon \ge 0$, added outside the square root (default 1e-8).
    - `amsgrad`: use AMSGrad's running maximum (default `False`).
    - `manifolds`: as `riemannian_gradient`.
    - `checks`: `False` drops the run-time checks of traced hyperparameters.

    **Returns:**

    An `optax.GradientTransformation` whose state is a `RiemannianAdamState`.

    **Raises:**

    A `ValueError` (or, traced, a runtime error) unless `b1` and `b2` are in [0, 1) and `eps`
    is finite and >= 0; a `ValueError` for an `update` without `params`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> import structjax.manifolds as sm, structjax.optim as so
    >>> m = sm.Sphere(3)
    >>> opt = optax.chain(
    ...     so.riemannian_gradient(m), so.scale_by_riemannian_adam(manifolds=m),
    ...     optax.scale(-0.1), so.retract(m))
    >>> x = x0 = jnp.asarray([0.6, 0.0, 0.8]); state = opt.init(x)
    >>> for _ in range(10):
    ...     updates, state = opt.update(jnp.asarray([0.0, 0.0, 1.0]), state, x)  # f = x_3
    ...     x = optax.apply_updates(x, updates)
    >>> print(bool(jnp.abs(jnp.linalg.norm(x) - 1.0) < 1e-12), bool(x[2] < x0[2]))
    True True

    ```
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


def retract(manifolds: Manifolds = None, *, _call: str = "retract") -> optax.GradientTransformation:
    r"""The last link of a Riemannian chain: a tangent step to the update of a retraction.

    For a tangent step $u \in T_x\mathcal M$ it returns the update $R_x(u) - x$, with $R$ the
    manifold's retraction (Absil, Mahony & Sepulchre 2008, Def. 4.1.1), so that
    `optax.apply_updates(x, updates)` lands on $R_x(u)$ (up to one rounding of the sum, which
    the next retraction removes). Euclidean leaves pass through.

    **Arguments:**

    - `manifolds`: as `riemannian_gradient`.

    **Returns:**

    An `optax.GradientTransformation` (stateless; its `update` needs `params`).

    **Raises:**

    A `ValueError` for an `update` without `params` or shapes that do not match.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> import structjax.manifolds as sm, structjax.optim as so
    >>> x = jnp.asarray([1.0, 0.0, 0.0])
    >>> opt = so.retract(sm.Sphere(3))
    >>> updates, _ = opt.update(jnp.asarray([0.0, 0.5, 0.0]), opt.init(x), x)
    >>> print(bool(jnp.abs(jnp.linalg.norm(optax.apply_updates(x, updates)) - 1.0) < 1e-12))
    True

    ```
    """

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
    manifolds: Manifolds = None,
    *,
    checks: bool = True,
    batch: bool = True,
) -> optax.GradientTransformation:
    r"""Riemannian SGD, with optional (transported) heavy-ball or Nesterov momentum.

    With $\operatorname{grad} f(x_t)$ the Riemannian gradient, $\mathcal T$ the vector
    transport, $R$ the retraction and $\eta_t$ the learning rate, it computes

    $$v_t = \beta\,\mathcal T_{x_{t-1}\to x_t}(v_{t-1}) + \operatorname{grad} f(x_t), \qquad
    x_{t+1} = R_{x_t}(-\eta_t\, v_t)$$

    ($v_t = \operatorname{grad} f(x_t)$ without momentum: Bonnabel 2013, eq. 2; the transported
    momentum as Bécigneul & Ganea 2019, eq. 5). Nesterov's form steps along
    $\operatorname{grad} f(x_t) + \beta v_t$, as `optax.sgd`.

    It is one transformation, equal to the chain `riemannian_gradient`,
    `scale_by_riemannian_momentum`, the learning rate and `retract`, but batched over the
    leaves of one manifold, shape and dtype (see `riemannian_adam`). Float16/bfloat16
    parameters are computed in float32 (the momentum buffer too) and their updates cast back.
    With `optax.apply_if_finite(opt, n)` a step whose gradient is not finite is skipped and the
    state kept as it was.

    **Arguments:**

    - `learning_rate`: $\eta$, a float or an optax schedule, finite and >= 0.
    - `momentum`: $\beta \in [0, 1)$ (default 0; a Python 0 builds no momentum buffer).
    - `nesterov`: Nesterov's momentum, as `optax.sgd` (default `False`).
    - `manifolds`: one manifold, or a pytree of manifolds (`None` = Euclidean) with the
        structure of the parameters (see `structjax.manifolds.manifolds_of`); a `Product`
        leaf takes a tuple of arrays.
    - `checks`: `False` drops the run-time checks (starting point, schedule values,
        traced hyperparameters); static checks (shapes, dtypes) stay.
    - `batch`: stack the leaves of one manifold, shape and dtype and step them together
        (default `True`: a handful of retractions for a model of hundreds of weights).
        `False` steps each leaf alone: use it when the leaves are sharded each its own way
        (a stack has one sharding, so XLA would all-gather the leaves into it and hand every
        leaf back with the stack's layout); the numbers are the same either way.

    **Returns:**

    An `optax.GradientTransformation` whose state is a `RiemannianStepState`.

    **Raises:**

    A `ValueError` (eagerly; a runtime error under `jit` and `optax.inject_hyperparams`) for a
    learning rate (or a schedule's value) that is NaN, infinite or negative, a `momentum`
    outside [0, 1), a starting point off its manifold; a `TypeError` for integer, boolean or
    complex parameters; a `ValueError` for an `update` without `params`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> import structjax.manifolds as sm, structjax.optim as so
    >>> m = sm.Stiefel(5, 2)
    >>> a = jnp.diag(jnp.arange(1.0, 6.0)); loss = lambda x: -jnp.trace(x.T @ a @ x)
    >>> x = x0 = m.random_point(jax.random.key(0))
    >>> opt = so.riemannian_sgd(0.05, momentum=0.9, manifolds=m); state = opt.init(x)
    >>> for _ in range(20):
    ...     updates, state = opt.update(jax.grad(loss)(x), state, x)
    ...     x = optax.apply_updates(x, updates)
    >>> print(bool(m.constraint_error(x) < 1e-12), bool(loss(x) < loss(x0)))
    True True

    ```
    """
    return riemannian_step(
        learning_rate, adam=False, momentum=momentum, nesterov=nesterov, manifolds=manifolds,
        checks=checks, batch=batch, call=_describe("riemannian_sgd", manifolds),
        lr_ok=finite_nonnegative, lr_expected=_LR,
    )  # fmt: skip


def riemannian_adam(
    learning_rate: optax.ScalarOrSchedule,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    amsgrad: bool = False,
    manifolds: Manifolds = None,
    *,
    checks: bool = True,
    batch: bool = True,
) -> optax.GradientTransformation:
    r"""Riemannian Adam and AMSGrad.

    The adaptive method of Bécigneul & Ganea ("Riemannian adaptive optimization methods",
    ICLR 2019, Algorithm 1), with the manifold's retraction $R$ and vector transport
    $\mathcal T$ in place of the exponential map and parallel transport. With
    $g_t = \operatorname{grad} f(x_t)$ the Riemannian gradient, $\|\cdot\|_{x}$ the manifold's
    norm at $x$ and $\eta_t$ the learning rate:

    $$m_t = \beta_1\,\mathcal T_{x_{t-1}\to x_t}(m_{t-1}) + (1 - \beta_1)\,g_t, \qquad
    v_t = \beta_2\,v_{t-1} + (1 - \beta_2)\,\|g_t\|_{x_t}^2,$$

    $$\hat m_t = \frac{m_t}{1 - \beta_1^t}, \quad \hat v_t = \frac{v_t}{1 - \beta_2^t}, \qquad
    x_{t+1} = R_{x_t}\Big(-\eta_t\,\frac{\hat m_t}{\sqrt{\hat v_t} + \varepsilon}\Big).$$

    The second moment $v_t$ is one number per manifold point (per factor of a `Product`, as
    the paper's products of manifolds), so the step stays tangent; on Euclidean leaves it is
    elementwise and the method is `optax.adam`. With `amsgrad=True`, $\sqrt{\hat v_t}$ is
    replaced by the square root of the running maximum of $\hat v_t$ (AMSGrad, as optax's).

    It is one transformation, equal to the chain `riemannian_gradient`,
    `scale_by_riemannian_adam`, the learning rate and `retract`, but batched: the geometry of
    the leaves that share a manifold, shape and dtype runs once per group, and its state
    (`RiemannianStepState`) keeps the moments stacked by group. Float16/bfloat16 parameters
    are computed in float32, with float32 moments, and their updates cast back. With
    `optax.apply_if_finite(opt, n)` a step whose gradient is not finite is skipped and the
    state kept as it was.

    **Arguments:**

    - `learning_rate`: $\eta$, a float or an optax schedule, finite and >= 0.
    - `b1`: $\beta_1 \in [0, 1)$, the decay of the first moment (default 0.9).
    - `b2`: $\beta_2 \in [0, 1)$, the decay of the second moment (default 0.999).
    - `eps`: $\varepsilon \ge 0$, finite, added outside the square root as in optax
        (default 1e-8).
    - `amsgrad`: use AMSGrad's running maximum of the second moment (default `False`).
    - `manifolds`: one manifold, or a pytree of manifolds (`None` = Euclidean) with the
        structure of the parameters; a `Product` leaf takes a tuple of arrays. Parameters on a
        manifold have its point shape with any leading batch axes, e.g. `(..., n, p)` for
        `Stiefel(n, p)`, and a real floating dtype.
    - `checks`: `False` drops the run-time checks (starting point, schedule values, traced
        hyperparameters); static checks (shapes, dtypes) stay.
    - `batch`: stack the leaves of one manifold, shape and dtype and step them together
        (default `True`: a handful of retractions for a model of hundreds of weights).
        `False` steps each leaf alone: use it when the leaves are sharded each its own way
        (a stack has one sharding, so XLA would all-gather the leaves into it and hand every
        leaf back with the stack's layout); the numbers are the same either way.

    **Returns:**

    An `optax.GradientTransformation` whose state is a `RiemannianStepState`; its `update`
    needs `params`.

    **Raises:**

    A `ValueError` (eagerly; a runtime error under `jit` and `optax.inject_hyperparams`) for a
    learning rate (or a schedule's value) that is NaN, infinite or negative, `b1` or `b2`
    outside [0, 1), an `eps` that is negative or not finite, or a starting point off its
    manifold; a `TypeError` for integer, boolean or complex parameters; a `ValueError` for an
    `update` without `params`.

    **Example:**

    Maximise $\operatorname{tr}(X^\top A X)$ over $5 \times 2$ orthonormal frames:

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> import structjax.manifolds as sm, structjax.optim as so
    >>> m = sm.Stiefel(5, 2)
    >>> a = jnp.diag(jnp.arange(1.0, 6.0)); loss = lambda x: -jnp.trace(x.T @ a @ x)
    >>> x = x0 = m.random_point(jax.random.key(0))
    >>> opt = so.riemannian_adam(0.1, manifolds=m); state = opt.init(x)
    >>> for _ in range(20):
    ...     updates, state = opt.update(jax.grad(loss)(x), state, x)
    ...     x = optax.apply_updates(x, updates)
    >>> print(bool(m.constraint_error(x) < 1e-12), bool(loss(x) < loss(x0)))
    True True

    ```
    """
    return riemannian_step(
        learning_rate, adam=True, b1=b1, b2=b2, eps=eps, amsgrad=amsgrad, manifolds=manifolds,
        checks=checks, batch=batch, call=_describe("riemannian_adam", manifolds),
        lr_ok=finite_nonnegative, lr_expected=_LR,
    )  # fmt: skip
