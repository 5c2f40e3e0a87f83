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
from ._tree import Manifolds, as_dtype, cast_like, finite_nonnegative, is_manifold_leaf, tree_map

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
            return Product(tuple(swap(f) for f in m.manifolds))  # pyright: ignore[reportArgumentType]  # factors are manifolds, never None
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
    q: ArrayLike = 0.5, eps: ArrayLike = 1e-8, manifolds: Manifolds = None, *, checks: bool = True,
    _call: str = "scale_by_cayley_bound",
) -> optax.GradientTransformation:  # fmt: skip
    r"""Bound a Stiefel step so that the iterative Cayley retraction contracts.

    For a step $u$ at $x$ with Cayley generator $W = \hat W - \hat W^\top$,
    $\hat W = u x^\top - \tfrac12 x x^\top u x^\top$ (Li, Fuxin & Todorovic 2020, eq. 6), it
    returns $u \cdot \min\big(1, 2q / (\|W\|_F + \varepsilon)\big)$, so that $\|W\|_F \le 2q$
    and the fixed-point iteration of the iterative Cayley retraction contracts with factor
    $\le q$ (Li et al. 2020, Algorithms 1 and 2). Euclidean leaves pass through. Chain it
    after the learning rate, before `retract`.

    **Arguments:**

    - `q`: the contraction factor, $0 < q < 1$ (default 0.5).
    - `eps`: $\varepsilon \ge 0$, guards the division (default 1e-8).
    - `manifolds`: as `riemannian_gradient`; the manifold leaves are Stiefel-type, with
        points of shape `(..., n, p)`.
    - `checks`: `False` drops the run-time checks of traced `q` and `eps`.

    **Returns:**

    An `optax.GradientTransformation` (stateless; its `update` needs `params`).

    **Raises:**

    A `ValueError` (or, traced, a runtime error) unless $0 < q < 1$ and `eps` is finite and
    >= 0; a `ValueError` for an `update` without `params`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> import structjax.manifolds as sm, structjax.optim as so
    >>> m = sm.Stiefel(4, 2); x = m.random_point(jax.random.key(0))
    >>> opt = so.scale_by_cayley_bound(q=0.5, manifolds=m)
    >>> g = m.to_tangent(x, 10 * jnp.ones((4, 2)))
    >>> u, _ = opt.update(g, opt.init(x), x)
    >>> print(bool(jnp.linalg.norm(u) < jnp.linalg.norm(g)))
    True

    ```
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
    manifolds: Manifolds = None,
    *,
    checks: bool = True,
    batch: bool = True,
) -> optax.GradientTransformation:
    r"""Cayley SGD with momentum on the Stiefel manifold.

    Li, Fuxin & Todorovic ("Efficient Riemannian optimization on the Stiefel manifold via the
    Cayley transform", ICLR 2020, Algorithm 1): with $\operatorname{grad} f(x_t)$ the
    Riemannian gradient, $\beta$ the momentum and $\eta_t$ the learning rate,

    $$v_t = \beta\,\Pi_{x_t}(v_{t-1}) + \operatorname{grad} f(x_t), \qquad
    x_{t+1} = Y\big(-\eta_t\,\alpha_t v_t\big),$$

    the momentum kept tangent by the projection $\Pi_{x_t}$, the step shrunk by
    $\alpha_t = \min(1, 2q/\|W\|_F)$ so that its Cayley generator has $\|W\|_F \le 2q$ (see
    `scale_by_cayley_bound`), and $Y$ the iterative Cayley retraction with `iterations`
    fixed-point steps. One batched transformation, as `riemannian_sgd`.

    **Arguments:**

    - `learning_rate`: $\eta$, a float or an optax schedule, finite and >= 0.
    - `momentum`: $\beta \in [0, 1)$ (default 0.9).
    - `nesterov`: Nesterov's momentum, as `optax.sgd` (default `False`).
    - `q`: the step bound's contraction factor in (0, 1) (default 0.5).
    - `iterations`: the fixed-point steps of the Cayley retraction, an int >= 1 (default 2).
    - `manifolds`: Stiefel, Orthogonal or SpecialOrthogonal (points `(..., n, p)`), or
        Products or pytrees of them (None for Euclidean leaves).
    - `checks`: as `riemannian_sgd`.
    - `batch`: as `riemannian_sgd` (default `True`; `False` for leaves sharded each its own
        way).

    **Returns:**

    An `optax.GradientTransformation` whose state is a `RiemannianStepState`.

    **Raises:**

    As `riemannian_sgd`; a `ValueError` (or, traced, a runtime error) for `q` outside (0, 1);
    a `ValueError` for `iterations` not a positive int or another manifold. Dtypes and
    `optax.apply_if_finite` as `riemannian_sgd`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> import structjax.manifolds as sm, structjax.optim as so
    >>> m = sm.Stiefel(5, 2)
    >>> a = jnp.diag(jnp.arange(1.0, 6.0)); loss = lambda x: -jnp.trace(x.T @ a @ x)
    >>> x = x0 = m.random_point(jax.random.key(0))
    >>> opt = so.cayley_sgd(0.05, manifolds=m); state = opt.init(x)
    >>> for _ in range(20):
    ...     updates, state = opt.update(jax.grad(loss)(x), state, x)
    ...     x = optax.apply_updates(x, updates)
    >>> print(bool(m.constraint_error(x) < 1e-12), bool(loss(x) < loss(x0)))
    True True

    ```
    """
    ms = _with_cayley(manifolds, iterations)
    call = _describe("cayley_sgd", manifolds)
    return riemannian_step(
        learning_rate, adam=False, momentum=momentum, nesterov=nesterov,
        bound=_bound(q, 1e-8, call, checks), manifolds=ms, checks=checks, batch=batch, call=call,
        lr_ok=finite_nonnegative, lr_expected=_LR,
    )  # fmt: skip


def cayley_adam(
    learning_rate: optax.ScalarOrSchedule,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.99,
    eps: ArrayLike = 1e-8,
    q: ArrayLike = 0.5,
    iterations: int = 2,
    manifolds: Manifolds = None,
    *,
    checks: bool = True,
    batch: bool = True,
) -> optax.GradientTransformation:
    r"""Cayley Adam on the Stiefel manifold.

    Li, Fuxin & Todorovic 2020 (ICLR, Algorithm 2): Adam with the second moment
    $v_t = \beta_2 v_{t-1} + (1 - \beta_2)\|G_t\|_F^2$ one number per Stiefel matrix, the
    first moment $m_t = \beta_1 \Pi_{x_t}(m_{t-1}) + (1 - \beta_1) G_t$ kept tangent by
    projection, the bias-corrected step $\eta_t \hat m_t / (\sqrt{\hat v_t} + \varepsilon)$
    bounded so that $\|W\|_F \le 2q$ (see `scale_by_cayley_bound`), and the iterative Cayley
    retraction. As optax, `eps` is added outside the square root.

    **Arguments:**

    - `learning_rate`: $\eta$, a float or an optax schedule, finite and >= 0.
    - `b1`: $\beta_1 \in [0, 1)$ (default 0.9).
    - `b2`: $\beta_2 \in [0, 1)$ (default 0.99, as the paper).
    - `eps`: $\varepsilon \ge 0$, finite (default 1e-8).
    - `q`, `iterations`, `manifolds`, `checks`, `batch`: as `cayley_sgd`.

    **Returns:**

    An `optax.GradientTransformation` whose state is a `RiemannianStepState`.

    **Raises:**

    As `cayley_sgd`, and for `b1`, `b2` or `eps` out of range (as `riemannian_adam`).

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp, optax
    >>> import structjax.manifolds as sm, structjax.optim as so
    >>> m = sm.Stiefel(5, 2)
    >>> a = jnp.diag(jnp.arange(1.0, 6.0)); loss = lambda x: -jnp.trace(x.T @ a @ x)
    >>> x = x0 = m.random_point(jax.random.key(0))
    >>> opt = so.cayley_adam(0.1, manifolds=m); state = opt.init(x)
    >>> for _ in range(20):
    ...     updates, state = opt.update(jax.grad(loss)(x), state, x)
    ...     x = optax.apply_updates(x, updates)
    >>> print(bool(m.constraint_error(x) < 1e-12), bool(loss(x) < loss(x0)))
    True True

    ```
    """
    ms = _with_cayley(manifolds, iterations)
    call = _describe("cayley_adam", manifolds)
    return riemannian_step(
        learning_rate, adam=True, b1=b1, b2=b2, eps=eps, bound=_bound(q, 1e-8, call, checks),
        manifolds=ms, checks=checks, batch=batch, call=call, lr_ok=finite_nonnegative,
        lr_expected=_LR,
    )  # fmt: skip
