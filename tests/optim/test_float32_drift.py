"""Float32: 10^4 optimiser steps on every manifold stay within 1e-5 of it, with no NaN,
including hyperbolic embeddings pushed against the boundary (a known failure of peers)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import optax
import pytest

import structjax.manifolds as sm
import structjax.optim as so

MANIFOLDS = {
    "Sphere": sm.Sphere(16),
    **{
        f"Stiefel-{r}": sm.Stiefel(16, 4, r)
        for r in ("qr", "polar", "cholesky_qr", "cayley", "cayley_iterative")
    },  # fmt: skip
    "Orthogonal": sm.Orthogonal(6),
    "SpecialOrthogonal": sm.SpecialOrthogonal(6),
    "Grassmann": sm.Grassmann(16, 4),
    **{
        f"SPD-{m}": sm.SymmetricPositiveDefinite(4, m)
        for m in ("affine", "log_euclidean", "bures_wasserstein")
    },  # fmt: skip
    "PoincareBall": sm.PoincareBall(8),
    "Lorentz": sm.Lorentz(8),
}


def _run(opt, f, x, steps):
    state = opt.init(x)

    def body(carry, _):
        x, state = carry
        updates, state = opt.update(jax.grad(f)(x), state, x)
        x = optax.apply_updates(x, updates)
        return (x, state), jnp.max(opt_manifold.constraint_error(x))

    opt_manifold = _run.manifold
    (x, _), errs = jax.lax.scan(body, (x, state), None, length=steps)
    return x, errs


@pytest.mark.parametrize("name", MANIFOLDS)
def test_float32_riemannian_adam_10k_steps(name):
    m = MANIFOLDS[name]
    x0 = m.random_point(jr.PRNGKey(0), (4,), jnp.float32)
    target = m.random_point(jr.PRNGKey(1), (4,), jnp.float32)
    # A smooth objective with a wandering minimiser: the iterates never settle, so every step
    # retracts a real move.
    w = jr.normal(jr.PRNGKey(2), x0.shape, jnp.float32)

    def f(x):
        return jnp.sum((x - target) ** 2) + 0.1 * jnp.sum(jnp.sin(3.0 * x) * w)

    _run.manifold = m
    x, errs = _run(so.riemannian_adam(1e-2, manifolds=m), f, x0, 10_000)
    assert x.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(x)))
    assert float(jnp.max(errs)) < 1e-5, float(jnp.max(errs))


def _push_outwards(m, origin_time):
    x0 = m.random_point(jr.PRNGKey(0), (16,), jnp.float32)
    origin = m.project(jnp.zeros_like(x0).at[..., 0].set(origin_time))

    def f(x):
        return -jnp.sum(m.distance(origin, x))

    _run.manifold = m
    x, errs = _run(so.riemannian_adam(5e-2, manifolds=m), f, x0, 10_000)
    assert bool(jnp.all(jnp.isfinite(x))), m
    assert float(jnp.max(errs)) < 1e-5, (m, float(jnp.max(errs)))
    assert float(jnp.min(m.distance(origin, x))) > 3.0  # they did travel outwards


@pytest.mark.parametrize("curvature", [-1.0, -4.0])
def test_poincare_embeddings_trained_against_the_boundary(curvature):
    """Maximise the distance from the origin: the points run into the boundary of the ball;
    float32 must give no NaN and keep them in the ball (geoopt's users report NaNs here)."""
    _push_outwards(sm.PoincareBall(5, curvature), 0.0)


@pytest.mark.xfail(
    strict=True,
    reason="known limitation: in float32 the hyperboloid's coordinates grow like e^d, and "
    "Riemannian Adam pushed without bound reaches NaN near distance ~15 even with the "
    "spatial-norm cap and the cancellation-free inner product; use PoincareBall (or "
    "float64) for float32 embeddings far out",
)
def test_lorentz_embeddings_pushed_without_bound():
    _push_outwards(sm.Lorentz(5, -1.0), 1.0)
