"""Optimisers from conformal Hamiltonian systems, as optax gradient transformations.

Momentum methods discretise the damped (conformal) Hamiltonian system
$\\dot q = \\nabla T(p)$, $\\dot p = -\\nabla f(q) - \\gamma p$ with potential $f$ the loss,
kinetic energy $T$ and damping $\\gamma \\ge 0$ (McLachlan & Perlmutter 2001, "Conformal
Hamiltonian systems"). A *conformal-symplectic* splitting (the exact damping flow
$p \\mapsto e^{-\\gamma t} p$ composed with symplectic flows) has a one-step map that
contracts the symplectic form by exactly $e^{-\\gamma h}$; `structjax.check.
conformal_symplecticity_error` measures that.

Parameters here are physical: `learning_rate` is the time step $h$, `damping` is
$\\gamma$, `mass` $m$ and `speed_of_light` $c$ describe $T$. Each function's docstring gives
the change of parameters to the optax and published forms.

Kinetic energies are radial, $T(p) = \\kappa(\\|p\\|^2)$ with the squared norm summed over
the whole parameter pytree (in each manifold's metric), so that $\\nabla T(p) =
2\\kappa'(\\|p\\|^2)\\,p$ is a tangent vector wherever $p$ is. Any scalar function
`kappa(s)` works (`kinetic=`); `quadratic_kinetic`, `relativistic_kinetic` and
`power_kinetic` build the usual ones.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import optax
from jax.typing import ArrayLike
from jaxtyping import Array, PyTree

from .._guards import hyperparameter
from ._riemannian import _describe, retract, riemannian_gradient, transport
from ._tree import (
    Manifolds,
    cast_like,
    check_params,
    concrete,
    copy_params,
    finite_nonnegative,
    finite_positive,
    first_leaf_dtype,
    tree_map,
    upcast,
    zeros_in_compute_dtype,
)

Kinetic = Callable[[Array], Array]


# --- kinetic energies, as functions of the squared norm s = |p|^2 ---------------------------


def _positive(name: str, value, allow_inf: bool = False, call: str | None = None,
              checks: bool = True):  # fmt: skip
    """`value`, refused (eagerly, or at run time when traced) unless > 0 (and finite)."""
    ok = (lambda v: v > 0) if allow_inf else finite_positive
    expected = "positive (or inf)" if allow_inf else "positive and finite"
    return hyperparameter(value, call or f"{name}=...", name, ok, expected,
                          checks=checks)  # fmt: skip


class _Quadratic:
    # A callable like any kinetic energy, which the optimisers recognise: its velocity
    # factor is the constant 1/m, so they skip the norm (one pass over the parameters).
    def __init__(self, mass):
        self.mass = mass

    def __call__(self, s):
        return s / (2 * self.mass)


def quadratic_kinetic(mass: ArrayLike = 1.0) -> Kinetic:
    r"""The Newtonian kinetic energy $T(p) = \|p\|^2 / (2m)$, as a function of $s = \|p\|^2$.

    Its velocity is $\nabla T(p) = p/m$: with it the conformal-Hamiltonian optimisers are
    heavy ball (Polyak's momentum; França, Sulam, Robinson & Vidal 2020, eq. (13)).

    **Arguments:**

    - `mass`: $m > 0$, finite (default 1).

    **Returns:**

    The function $\kappa(s) = s / (2m)$ of the squared norm, for `kinetic=`.

    **Raises:**

    A `ValueError` (or, traced, a runtime error) unless `mass` is positive and finite.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp, structjax.optim as so
    >>> print(float(so.quadratic_kinetic(2.0)(jnp.asarray(4.0))))
    1.0

    ```
    """
    return _Quadratic(_positive("mass", mass, call="quadratic_kinetic(mass=...)"))


def relativistic_kinetic(mass: ArrayLike = 1.0, speed_of_light: ArrayLike = 1.0) -> Kinetic:
    r"""The relativistic kinetic energy $T(p) = c\sqrt{\|p\|^2 + m^2c^2} - mc^2$.

    França, Sulam, Robinson & Vidal 2020, eq. (20): the speed
    $\|\nabla T(p)\| = \|p\| / \sqrt{m^2 + \|p\|^2/c^2}$ stays below $c$ however large the
    momentum. $c = \infty$ is the quadratic energy. With $m = c = 1$ it is Maddison et al.'s
    relativistic energy $\varphi_2^1$ (see `power_kinetic`).

    **Arguments:**

    - `mass`: $m > 0$, finite (default 1).
    - `speed_of_light`: $c > 0$, or `inf` (default 1).

    **Returns:**

    The function $\kappa(s)$ of the squared norm $s = \|p\|^2$, for `kinetic=`.

    **Raises:**

    A `ValueError` (or, traced, a runtime error) unless `mass` is positive and finite and
    `speed_of_light` is positive.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp, structjax.optim as so
    >>> t = so.relativistic_kinetic(mass=1.0, speed_of_light=1.0)
    >>> v = jax.grad(lambda p: t(p @ p))(jnp.asarray([300.0, 400.0]))
    >>> print(bool(jnp.linalg.norm(v) < 1.0))  # slower than light
    True

    ```
    """
    call = "relativistic_kinetic(mass=..., speed_of_light=...)"
    mass = _positive("mass", mass, call=call)
    speed_of_light = _positive("speed_of_light", speed_of_light, True, call=call)
    if concrete(speed_of_light) and math.isinf(float(speed_of_light)):  # pyright: ignore[reportArgumentType]  # concrete: a Python or NumPy scalar
        return quadratic_kinetic(mass)
    c = speed_of_light
    # c sqrt(s + m^2 c^2) - m c^2 = s / (sqrt(s / c^2 + m^2) + m): no cancellation at small s.
    return lambda s: s / (jnp.sqrt(s / c**2 + mass**2) + mass)


def power_kinetic(a: ArrayLike, big_a: ArrayLike) -> Kinetic:
    r"""The power kinetic energies $\varphi_a^A$ of Hamiltonian descent.

    $T(p) = \varphi_a^A(\|p\|) = \tfrac1A\big((\|p\|^a + 1)^{A/a} - 1\big)$ (Maddison,
    Paulin, Teh, O'Donoghue & Doucet 2018, "Hamiltonian descent methods"): like $\|p\|^a/a$
    near 0 and $\|p\|^A/A$ far out; $a = A = 2$ is the quadratic energy, $a = 2$, $A = 1$ the
    relativistic one.

    **Arguments:**

    - `a`: the exponent near 0, finite and >= 1.
    - `big_a`: the exponent $A$ far out, finite and >= 1.

    **Returns:**

    The function $\kappa(s)$ of the squared norm $s = \|p\|^2$, for `kinetic=`.

    **Raises:**

    A `ValueError` (or, traced, a runtime error) unless $a, A \ge 1$ and finite.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp, structjax.optim as so
    >>> s = jnp.asarray([0.0, 1.0, 9.0])
    >>> print(bool(jnp.allclose(so.power_kinetic(2.0, 1.0)(s), so.relativistic_kinetic()(s))))
    True

    ```
    """
    call = f"power_kinetic(a={a}, A={big_a})" if concrete(a, big_a) else "power_kinetic(a, A)"
    a = hyperparameter(a, call, "a", lambda v: (v >= 1) & (v < math.inf), "finite and >= 1")
    big_a = hyperparameter(big_a, call, "A", lambda v: (v >= 1) & (v < math.inf),
                           "finite and >= 1")  # fmt: skip
    # Written in s = |p|^2, |p|^a = s^(a/2); the gradient in p, 2 T'(s) p, is
    # |p|^(a-2) (|p|^a + 1)^(A/a - 1) p, finite at p = 0 for a >= 2 and bounded for a >= 1.
    return lambda s: ((s ** (a / 2) + 1) ** (big_a / a) - 1) / big_a


# --- shared pieces --------------------------------------------------------------------------


def _check_damping(damping, call, checks):
    return hyperparameter(damping, call, "damping", finite_nonnegative,
                          ">= 0 and finite (a friction)", checks=checks)  # fmt: skip


_STEP = "positive and finite (the time step h)"


def _check_step(learning_rate: optax.ScalarOrSchedule, call, checks) -> optax.ScalarOrSchedule:
    if callable(learning_rate):
        return learning_rate
    return hyperparameter(learning_rate, call, "learning_rate", finite_positive, _STEP,
                          checks=checks)  # fmt: skip


def _step_size(learning_rate, count, call, checks):
    """The step h: a constant (checked when built) or the schedule's value, checked here."""
    if not callable(learning_rate):
        return learning_rate
    return hyperparameter(learning_rate(count), call, "learning_rate (the schedule's value)",
                          finite_positive, _STEP, checks=checks)  # fmt: skip


def _sq_norm(manifolds, params, tree, dtype) -> Array:
    """$\\|u\\|^2$ over the whole pytree, in each leaf's metric (Euclidean for None)."""
    if manifolds is None:
        parts = [jnp.sum(u * u) for u in jtu.tree_leaves(tree)]
    else:
        parts = jtu.tree_leaves(tree_map(
            lambda m, x, u: u * u if m is None else m.inner(x, u, u), manifolds, params, tree,
        ))  # fmt: skip
        parts = [jnp.sum(u) for u in parts]
    return sum(parts, start=jnp.zeros((), dtype))


def _velocity_factor(kinetic: Kinetic, s):
    """$2\\kappa'(s)$, so that $\\nabla T(p) = 2\\kappa'(\\|p\\|^2)\\, p$; 0 at $s = 0$ (where
    $p = 0$), where energies like $\\|p\\|^a$, $a < 2$, have an infinite $\\kappa'$ but a
    zero velocity."""
    positive = s > 0
    safe = jnp.where(positive, s, jnp.ones_like(s))
    return jnp.where(positive, 2 * jax.grad(kinetic)(safe), jnp.zeros_like(s))


def _carry(manifolds, params, state_previous, momentum):
    """The stored momentum at the current point: transported on manifolds."""
    if manifolds is None:
        return momentum
    return tree_map(lambda m, x, xp, v: transport(m, xp, x, v), manifolds, params,
                    state_previous, momentum)  # fmt: skip


def _scalar(x, like):
    return jnp.asarray(x, jnp.result_type(like))


class ConformalMomentumState(NamedTuple):
    r"""The state of `scale_by_conformal_euler` (and so of `conformal_symplectic_momentum` and
    `hamiltonian_descent`).

    **Arguments:**

    - `count`: steps taken, an int32 scalar (a schedule's argument).
    - `momentum`: $p$, a pytree like the params (float32 for 16-bit leaves).
    - `previous`: the params of the last step, to transport `momentum` from (None without
        manifolds).

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp, structjax.optim as so
    >>> so.scale_by_conformal_euler(0.1, damping=1.0).init(jnp.zeros(2))._fields
    ('count', 'momentum', 'previous')

    ```
    """

    count: Array
    momentum: PyTree
    previous: PyTree


class RelativisticState(NamedTuple):
    r"""The state of `scale_by_relativistic` (and so of `relativistic_gd`).

    **Arguments:**

    - `count`: steps taken, an int32 scalar (a schedule's argument).
    - `momentum`: the last half-step momentum $w$, a pytree like the params.
    - `previous`: the params of the last step, to transport `momentum` from (None without
        manifolds).
    - `sq_norm`: $\|w\|^2$, a scalar reused at the next step (without manifolds).

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp, structjax.optim as so
    >>> so.scale_by_relativistic(0.1, damping=1.0).init(jnp.zeros(2))._fields
    ('count', 'momentum', 'previous', 'sq_norm')

    ```
    """

    count: Array
    momentum: PyTree
    previous: PyTree
    sq_norm: Array


def _init(manifolds, call):
    def init_fn(params):
        check_params(params, f"{call}.init")
        previous = None if manifolds is None else copy_params(params)
        return ConformalMomentumState(jnp.zeros((), jnp.int32), zeros_in_compute_dtype(params),
                                      previous)  # fmt: skip

    return init_fn


def _inputs(updates, params, manifolds, call):
    """The gradients in the compute dtype, a scalar of that dtype, and the tree whose dtypes
    the updates leave in."""
    if manifolds is not None and params is None:
        raise ValueError(f"`{call}.update` on manifolds needs `params`.")
    check_params(updates, f"{call}.update", "updates")
    out_like = updates if params is None else params
    return jtu.tree_map(upcast, updates), jnp.zeros((), first_leaf_dtype(updates)), out_like


# --- conformal-symplectic Euler (heavy ball, Hamiltonian descent) --------------------------


def scale_by_conformal_euler(
    learning_rate: optax.ScalarOrSchedule,
    damping: ArrayLike,
    kinetic: Kinetic | None = None,
    exact_damping: bool = True,
    manifolds: Manifolds = None,
    *,
    checks: bool = True,
    _call: str = "scale_by_conformal_euler",
) -> optax.GradientTransformation:
    r"""One step of the conformal-symplectic Euler method for a damped Hamiltonian flow.

    For $\dot q = \nabla T(p)$, $\dot p = -g - \gamma p$, with $g$ the incoming (Riemannian)
    gradient and $h$ the step, it computes

    $$p \leftarrow \mu\,p - h\,g\ \text{or}\ \delta\,(p - h\,g), \qquad
    \text{update} = h\,\nabla T(p).$$

    With `exact_damping=True`, $\mu = e^{-\gamma h}$: the exact damping flow, then a kick,
    then a drift (McLachlan & Perlmutter 2001; França et al. 2020, eq. (13)); the map
    contracts the symplectic form by $e^{-\gamma h}$. With `exact_damping=False`,
    $\delta = 1/(1 + \gamma h)$: the first explicit method of Maddison et al. 2018
    (contraction $\delta$). On manifolds the momentum is transported to each new point, and
    the update is a tangent vector for `retract` (chain it last).

    **Arguments:**

    - `learning_rate`: the step $h > 0$, a float or an optax schedule.
    - `damping`: $\gamma \ge 0$, finite.
    - `kinetic`: $\kappa$ with $T(p) = \kappa(\|p\|^2)$ (default `quadratic_kinetic()`).
    - `exact_damping`: $e^{-\gamma h}$ (default `True`) or $1/(1 + \gamma h)$.
    - `manifolds`: as `riemannian_gradient` (None: Euclidean, `params` optional).
    - `checks`: `False` drops the run-time checks of traced hyperparameters.

    **Returns:**

    An `optax.GradientTransformation` whose state is a `ConformalMomentumState`.

    **Raises:**

    A `ValueError` (or, traced, a runtime error) for a `learning_rate` (or a schedule's value)
    not positive and finite, a `damping` not >= 0 and finite; a `ValueError` for a `kinetic`
    that is not callable or, on manifolds, an `update` without `params`; a `TypeError` for
    integer or complex gradients.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp, optax, structjax.optim as so
    >>> opt = so.scale_by_conformal_euler(0.5, damping=1.0)
    >>> x = jnp.asarray([1.0, -2.0]); state = opt.init(x)
    >>> for _ in range(30):
    ...     updates, state = opt.update(x, state)  # the gradient of |x|^2 / 2
    ...     x = optax.apply_updates(x, updates)
    >>> print(bool(jnp.linalg.norm(x) < 1e-2))
    True

    ```
    """
    learning_rate = _check_step(learning_rate, _call, checks)
    damping = _check_damping(damping, _call, checks)
    kinetic = quadratic_kinetic() if kinetic is None else kinetic
    if not callable(kinetic):
        raise ValueError(f"`kinetic` must be a function of the squared norm, got {kinetic!r}.")

    def update_fn(updates, state, params=None):
        updates, like, out_like = _inputs(updates, params, manifolds, _call)
        h = _scalar(_step_size(learning_rate, state.count, _call, checks), like)
        gamma = _scalar(damping, like)
        p = _carry(manifolds, params, state.previous, state.momentum)
        if exact_damping:
            mu = jnp.exp(-gamma * h)
            p = jtu.tree_map(lambda p, g: (mu * p - h * g).astype(p.dtype), p, updates)
        else:
            delta = 1 / (1 + gamma * h)
            # delta p - (delta h) g: one fused pass (delta (p - h g) materialised p - h g)
            p = jtu.tree_map(lambda p, g: (delta * p - delta * h * g).astype(p.dtype), p, updates)
        if isinstance(kinetic, _Quadratic):
            factor = h / _scalar(kinetic.mass, like)
        else:
            factor = h * _velocity_factor(kinetic, _sq_norm(manifolds, params, p, like.dtype))
        out = cast_like(jtu.tree_map(lambda p: (factor * p).astype(p.dtype), p), out_like)
        count = jnp.asarray(optax.safe_int32_increment(state.count))
        previous = None if manifolds is None else copy_params(params)
        return out, ConformalMomentumState(count, p, previous)

    return optax.GradientTransformation(_init(manifolds, _call), update_fn)


def _finish(parts, manifolds, call, checks):
    if manifolds is None:
        return parts[0] if len(parts) == 1 else optax.chain(*parts)
    return optax.chain(riemannian_gradient(manifolds, checks=checks, _call=call), *parts,
                       retract(manifolds, _call=call))  # fmt: skip


def conformal_symplectic_momentum(
    learning_rate: optax.ScalarOrSchedule,
    damping: ArrayLike,
    mass: ArrayLike = 1.0,
    manifolds: Manifolds = None,
    *,
    checks: bool = True,
) -> optax.GradientTransformation:
    r"""Heavy ball as a dissipative Hamiltonian flow.

    The conformal-symplectic Euler method with exact damping and $T(p) = \|p\|^2/2m$ (França,
    Sulam, Robinson & Vidal 2020, "Conformal symplectic and relativistic optimization",
    NeurIPS, eq. (13)):

    $$p \leftarrow e^{-\gamma h} p - h\nabla f(q), \qquad q \leftarrow q + h p / m.$$

    It is `optax.sgd(learning_rate=h**2 / m, momentum=exp(-damping * h))` (the trace is
    $-p/h$), to rounding, on the same gradients. Its one-step map contracts the symplectic form
    by exactly $e^{-\gamma h}$. Dtypes (16-bit in float32, momentum too) and
    `optax.apply_if_finite` (a non-finite step skipped, the state kept) as `riemannian_sgd`.

    **Arguments:**

    - `learning_rate`: the time step $h > 0$ (a float or an optax schedule).
    - `damping`: $\gamma \ge 0$.
    - `mass`: $m > 0$ (default 1).
    - `manifolds`: as `riemannian_sgd`: on manifolds the momentum is transported and the
        step retracted.
    - `checks`: `False` drops the run-time checks (as `riemannian_sgd`).

    **Returns:**

    An `optax.GradientTransformation`.

    **Raises:**

    A `ValueError` (eagerly; a runtime error under `jit` and `optax.inject_hyperparams`) for
    `learning_rate` (or a schedule's value) not positive and finite, `damping` not >= 0 and
    finite, `mass` not positive and finite, a starting point off its manifold; a `TypeError`
    for integer or complex parameters.

    **Example:**

    The same iterates as `optax.sgd` with the matching parameters:

    ```pycon
    >>> import jax.numpy as jnp, optax, structjax.optim as so
    >>> h, gamma = 0.5, 1.0
    >>> opts = [so.conformal_symplectic_momentum(h, gamma),
    ...         optax.sgd(h**2, momentum=float(jnp.exp(-gamma * h)))]
    >>> xs = []
    >>> for opt in opts:
    ...     x = jnp.asarray([1.0, -2.0]); state = opt.init(x)
    ...     for _ in range(5):
    ...         updates, state = opt.update(x, state)  # the gradient of |x|^2 / 2
    ...         x = optax.apply_updates(x, updates)
    ...     xs.append(x)
    >>> print(bool(jnp.allclose(xs[0], xs[1], rtol=1e-12)))
    True

    ```
    """
    call = _describe("conformal_symplectic_momentum", manifolds)
    kinetic = _Quadratic(_positive("mass", mass, call=call, checks=checks))
    return _finish(
        [scale_by_conformal_euler(learning_rate, damping, kinetic, True, manifolds,
                                  checks=checks, _call=call)], manifolds, call, checks,
    )  # fmt: skip


def hamiltonian_descent(
    learning_rate: optax.ScalarOrSchedule,
    damping: ArrayLike,
    kinetic: Kinetic | None = None,
    manifolds: Manifolds = None,
    *,
    checks: bool = True,
) -> optax.GradientTransformation:
    r"""Hamiltonian descent with a pluggable kinetic energy.

    Maddison, Paulin, Teh, O'Donoghue & Doucet 2018 ("Hamiltonian descent methods", the first
    explicit method):

    $$p \leftarrow \delta\,(p - \epsilon\nabla f(x)), \quad \delta = (1 + \gamma\epsilon)^{-1},
    \qquad x \leftarrow x + \epsilon\,\nabla k(p),$$

    with the kinetic energy `kinetic(s)` of the squared norm $s = \|p\|^2$, by default
    `quadratic_kinetic()`; `relativistic_kinetic` and `power_kinetic` give the families of the
    paper, whose kinetic map can be matched to the objective's growth for linear convergence
    beyond strong convexity. The map contracts the symplectic form by $\delta$.

    **Arguments:**

    - `learning_rate`: the step $\epsilon > 0$ (a float or an optax schedule).
    - `damping`: $\gamma \ge 0$.
    - `kinetic`: $\kappa$ with $k(p) = \kappa(\|p\|^2)$ (default `quadratic_kinetic()`).
    - `manifolds`, `checks`: as `riemannian_sgd`.

    **Returns:**

    An `optax.GradientTransformation`.

    **Raises:**

    As `conformal_symplectic_momentum` (without `mass`), and a `ValueError` for a `kinetic`
    that is not callable.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> import structjax.manifolds as sm, structjax.optim as so
    >>> m = sm.Stiefel(5, 2)
    >>> a = jnp.diag(jnp.arange(1.0, 6.0)); loss = lambda x: -jnp.trace(x.T @ a @ x)
    >>> x = x0 = m.random_point(jax.random.key(0))
    >>> opt = so.hamiltonian_descent(0.2, damping=1.0, manifolds=m); state = opt.init(x)
    >>> for _ in range(20):
    ...     updates, state = opt.update(jax.grad(loss)(x), state, x)
    ...     x = optax.apply_updates(x, updates)
    >>> print(bool(m.constraint_error(x) < 1e-12), bool(loss(x) < loss(x0)))
    True True

    ```
    """
    call = _describe("hamiltonian_descent", manifolds)
    return _finish(
        [scale_by_conformal_euler(learning_rate, damping, kinetic, False, manifolds,
                                  checks=checks, _call=call)], manifolds, call, checks,
    )  # fmt: skip


# --- relativistic gradient descent --------------------------------------------------------


def scale_by_relativistic(
    learning_rate: optax.ScalarOrSchedule,
    damping: ArrayLike,
    mass: ArrayLike = 1.0,
    speed_of_light: ArrayLike = 1.0,
    alpha: ArrayLike = 1.0,
    manifolds: Manifolds = None,
    *,
    checks: bool = True,
    _call: str = "scale_by_relativistic",
) -> optax.GradientTransformation:
    r"""Relativistic gradient descent's step, as a chainable block.

    In the form whose iterates are the points where the gradient is taken: with $w$ the last
    half-step momentum, $\mu = e^{-\gamma h}$, $\epsilon = h^2/2m$, $\delta = 4/(h^2c^2)$ and
    $g$ the incoming gradient,
    $w' = \mu w - \epsilon g$ and the update is
    $w'/\sqrt{1 + \delta\|w'\|^2} + \mu w'/\sqrt{1 + \delta\mu^2\|w'\|^2}
    - (1 - \alpha)\,\mu w/\sqrt{1 + \delta\mu^2\|w\|^2}$ (França, Sulam, Robinson & Vidal 2020,
    Algorithm 1; see `relativistic_gd` for the derivation). On manifolds chain it between
    `riemannian_gradient` and `retract`.

    **Arguments:**

    - `learning_rate`: the time step $h > 0$ (a float or an optax schedule).
    - `damping`: $\gamma \ge 0$.
    - `mass`: $m > 0$ (default 1).
    - `speed_of_light`: $c > 0$, or `inf` (default 1).
    - `alpha`: the mixing parameter in $[0, 1]$ (default 1).
    - `manifolds`, `checks`: as `scale_by_conformal_euler`.

    **Returns:**

    An `optax.GradientTransformation` whose state is a `RelativisticState`.

    **Raises:**

    As `relativistic_gd`.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp, optax, structjax.optim as so
    >>> opt = so.scale_by_relativistic(0.5, damping=1.0)
    >>> x = jnp.asarray([1.0, -2.0]); state = opt.init(x)
    >>> for _ in range(30):
    ...     updates, state = opt.update(x, state)  # the gradient of |x|^2 / 2
    ...     x = optax.apply_updates(x, updates)
    >>> print(bool(jnp.linalg.norm(x) < 1e-2))
    True

    ```
    """
    learning_rate = _check_step(learning_rate, _call, checks)
    damping = _check_damping(damping, _call, checks)
    mass = _positive("mass", mass, call=_call, checks=checks)
    speed_of_light = _positive("speed_of_light", speed_of_light, True, call=_call, checks=checks)
    alpha = hyperparameter(alpha, _call, "alpha", lambda v: (v >= 0) & (v <= 1),
                           "in [0, 1]", checks=checks)  # fmt: skip
    # Known now: skip the work of a term that vanishes (alpha = 1, c = inf).
    mixing = not (concrete(alpha) and float(alpha) == 1.0)  # pyright: ignore[reportArgumentType]  # concrete: a Python or NumPy scalar
    classical = concrete(speed_of_light) and math.isinf(float(speed_of_light))  # pyright: ignore[reportArgumentType]  # concrete: a Python or NumPy scalar

    def update_fn(updates, state, params=None):
        updates, like, out_like = _inputs(updates, params, manifolds, _call)
        h = _scalar(_step_size(learning_rate, state.count, _call, checks), like)
        mu = jnp.exp(-_scalar(damping, like) * h)
        eps = h**2 / (2 * _scalar(mass, like))
        w_prev = _carry(manifolds, params, state.previous, state.momentum)
        w = jtu.tree_map(lambda v, g: (mu * v - eps * g).astype(v.dtype), w_prev, updates)
        if classical:  # c = inf: delta = 0, no norms
            step = 1 + mu
            d_scale = -mu
        else:
            delta = 4 / (h**2 * _scalar(speed_of_light, like) ** 2)
            sw = _sq_norm(manifolds, params, w, like.dtype)
            step = jax.lax.rsqrt(1 + delta * sw) + mu * jax.lax.rsqrt(1 + delta * mu**2 * sw)
            if not mixing:
                d_scale = 0.0
            else:  # |w_prev|^2: the last step's |w|^2, unless transport changed it
                sp = (_sq_norm(manifolds, params, w_prev, like.dtype) if manifolds is not None
                      else state.sq_norm)  # fmt: skip
                d_scale = -mu * jax.lax.rsqrt(1 + delta * mu**2 * sp)
        # y' - y = step * w + (1 - alpha) (x - y), with x - y = d_scale * w_prev
        if mixing:
            out = jtu.tree_map(
                lambda v, wv: ((1 - alpha) * d_scale * v + step * wv).astype(wv.dtype), w_prev, w
            )
        else:
            out = jtu.tree_map(lambda wv: (step * wv).astype(wv.dtype), w)
        out = cast_like(out, out_like)
        count = jnp.asarray(optax.safe_int32_increment(state.count))
        sq = state.sq_norm if classical else sw.astype(state.sq_norm.dtype)
        previous = None if manifolds is None else copy_params(params)
        return out, RelativisticState(count, w, previous, sq)

    def init_fn(params):
        base = _init(manifolds, _call)(params)
        dtype = first_leaf_dtype(params)
        return RelativisticState(base.count, base.momentum, base.previous, jnp.zeros((), dtype))

    return optax.GradientTransformation(init_fn, update_fn)


def relativistic_gd(
    learning_rate: optax.ScalarOrSchedule,
    damping: ArrayLike,
    mass: ArrayLike = 1.0,
    speed_of_light: ArrayLike = 1.0,
    alpha: ArrayLike = 1.0,
    manifolds: Manifolds = None,
    *,
    checks: bool = True,
) -> optax.GradientTransformation:
    r"""Relativistic gradient descent (RGD).

    França, Sulam, Robinson & Vidal 2020 (NeurIPS, Algorithm 1): the conformal leapfrog for
    the relativistic Hamiltonian $H = c\sqrt{\|p\|^2 + m^2c^2} + f(x)$ with damping $\gamma$.

    **Derivation.** Strang-split the flow as half a damping, half a drift, a kick, half a
    drift, half a damping ($D_{h/2} A_{h/2} B_h A_{h/2} D_{h/2}$). With $\mu = e^{-\gamma h}$,
    the scaled momentum $v = hp/2m$, $\epsilon = h^2/2m$ and $\delta = 4/(h^2c^2)$ it reads
    (their published update, with mixing $\alpha$)

    $x_{1/2} = x + \sqrt\mu\,v/\sqrt{1 + \delta\mu\|v\|^2}$,
    $v_{1/2} = \sqrt\mu\,v - \epsilon\nabla f(x_{1/2})$,
    $x \leftarrow \alpha x_{1/2} + (1 - \alpha)x + v_{1/2}/\sqrt{1 + \delta\|v_{1/2}\|^2}$,
    $v \leftarrow \sqrt\mu\, v_{1/2}$.

    The gradient is taken at $x_{1/2}$, so here the parameters *are* the $x_{1/2}$ (the
    optax convention: gradients at the params). Eliminating $x$ and $v$, with $w$ the last
    $v_{1/2}$ ($w = 0$ at the start, where $x_{1/2} = x$):
    $w' = \mu w - \epsilon\nabla f(y)$ and
    $y' = y + w'/\sqrt{1 + \delta\|w'\|^2} + \mu w'/\sqrt{1 + \delta\mu^2\|w'\|^2}
    - (1 - \alpha)\,\mu w/\sqrt{1 + \delta\mu^2\|w\|^2}$.

    For $\alpha = 1$ the map is conformal symplectic with factor $\mu$; $\alpha < 1$ breaks
    that. **Limits** ($c \to \infty$, `speed_of_light=inf`): $\alpha = 1$ is heavy ball,
    `optax.sgd((1 + mu) * eps, momentum=mu)`; $\alpha = 0$ is Nesterov's method,
    `optax.sgd(eps, momentum=mu, nesterov=True)`.

    `franca_parameters(epsilon, mu, delta, mass)` converts the paper's $(\epsilon, \mu,
    \delta)$ (defaults there $\mu = 0.9$, $\delta = 0.1$) into these arguments.

    **Arguments:**

    - `learning_rate`: the time step $h > 0$ (a float or an optax schedule).
    - `damping`: $\gamma \ge 0$.
    - `mass`: $m > 0$ (default 1).
    - `speed_of_light`: $c > 0$, or `inf` (default 1).
    - `alpha`: the mixing parameter in $[0, 1]$ (default 1).
    - `manifolds`: as `riemannian_sgd` (momentum transported, step retracted, norms in the
        manifolds' metrics).
    - `checks`: as `riemannian_sgd`.

    **Returns:**

    An `optax.GradientTransformation`.

    **Raises:**

    As `conformal_symplectic_momentum`, and for `speed_of_light` not > 0 (`inf` is allowed)
    or `alpha` outside [0, 1].

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> import structjax.manifolds as sm, structjax.optim as so
    >>> m = sm.Stiefel(5, 2)
    >>> a = jnp.diag(jnp.arange(1.0, 6.0)); loss = lambda x: -jnp.trace(x.T @ a @ x)
    >>> x = x0 = m.random_point(jax.random.key(0))
    >>> opt = so.relativistic_gd(0.3, damping=1.0, manifolds=m); state = opt.init(x)
    >>> for _ in range(20):
    ...     updates, state = opt.update(jax.grad(loss)(x), state, x)
    ...     x = optax.apply_updates(x, updates)
    >>> print(bool(m.constraint_error(x) < 1e-12), bool(loss(x) < loss(x0)))
    True True

    ```
    """
    call = _describe("relativistic_gd", manifolds)
    return _finish(
        [scale_by_relativistic(learning_rate, damping, mass, speed_of_light, alpha, manifolds,
                               checks=checks, _call=call)], manifolds, call, checks,
    )  # fmt: skip


def franca_parameters(epsilon: float, mu: float, delta: float, mass: float = 1.0) -> dict:
    r"""`relativistic_gd`'s arguments for França et al.'s parameters.

    França, Sulam, Robinson & Vidal 2020 (Algorithm 1) write RGD with a step $\epsilon$, a
    momentum factor $\mu \in (0, 1]$ and $\delta \ge 0$; they are
    $h = \sqrt{2m\epsilon}$, $\gamma = -\ln\mu / h$, $c = 2 / (h\sqrt\delta)$ ($\infty$ for
    $\delta = 0$).

    **Arguments:**

    - `epsilon`: the paper's step $\epsilon > 0$.
    - `mu`: the momentum factor $\mu \in (0, 1]$.
    - `delta`: $\delta \ge 0$.
    - `mass`: $m > 0$ (default 1).

    **Returns:**

    A dict of `learning_rate`, `damping`, `mass` and `speed_of_light`, for
    `relativistic_gd(**kwargs)`.

    **Raises:**

    A `ValueError` unless `epsilon > 0`, `0 < mu <= 1`, `delta >= 0` and `mass > 0`.

    **Example:**

    ```pycon
    >>> import structjax.optim as so
    >>> kw = so.franca_parameters(0.01, 0.9, 0.1)
    >>> print(round(kw["learning_rate"], 4), round(kw["speed_of_light"], 2))
    0.1414 44.72
    >>> opt = so.relativistic_gd(**kw)

    ```
    """
    if not (epsilon > 0 and 0 < mu <= 1 and delta >= 0 and mass > 0):
        raise ValueError(
            f"Need epsilon > 0, 0 < mu <= 1, delta >= 0, mass > 0; got {epsilon}, {mu}, "
            f"{delta}, {mass}."
        )
    h = math.sqrt(2 * mass * epsilon)
    c = math.inf if delta == 0 else 2 / (h * math.sqrt(delta))
    return dict(learning_rate=h, damping=-math.log(mu) / h, mass=mass, speed_of_light=c)
