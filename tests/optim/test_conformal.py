"""Conformal Hamiltonian optimisers: conformal symplecticity, the optax and published forms
they reduce to, linear rates, known optima, optax conformance, dtypes, errors."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import structjax.manifolds as sm
import structjax.optim as so
from structjax.check import conformal_symplecticity_error

from .loop import run

H, GAMMA, MASS = 0.3, 0.7, 2.0
MU = math.exp(-GAMMA * H)


def _objective(x):
    """Nonlinear, non-quadratic, coupled: a fair test of the one-step map's Jacobian."""
    return jnp.sum(jnp.log1p(jnp.exp(x))) + 0.5 * jnp.sum(x**4) + x[0] * x[1] - jnp.sin(x[2])


X0 = jnp.array([0.3, -0.5, 1.2])
P0 = jnp.array([0.1, 0.2, -0.3])


def _step_map(opt, f=_objective):
    """The one-step map (params, momentum) -> (params, momentum) of an optimiser whose
    state holds a `ConformalMomentumState`."""

    def replace(state, p):
        if isinstance(state, so.RelativisticState):
            return state._replace(momentum=p, sq_norm=jnp.sum(p * p))
        if isinstance(state, so.ConformalMomentumState):
            return state._replace(momentum=p)
        return tuple(replace(s, p) for s in state) if isinstance(state, tuple) else state

    def find(state):
        if isinstance(state, (so.ConformalMomentumState, so.RelativisticState)):
            return state.momentum
        if not isinstance(state, tuple):
            return None
        found = [find(s) for s in state if isinstance(s, tuple)]
        return next(m for m in found if m is not None)

    def step(q, p):
        state = replace(opt.init(q), p)
        updates, state = opt.update(jax.grad(f)(q), state, q)
        return optax.apply_updates(q, updates), find(state)

    return step


CONFORMAL = {
    "conformal_symplectic_momentum": (so.conformal_symplectic_momentum(H, GAMMA, MASS), MU),
    "relativistic_gd": (so.relativistic_gd(H, GAMMA, MASS, 1.5), MU),
    "relativistic_gd_classical": (so.relativistic_gd(H, GAMMA, MASS, math.inf), MU),
    "hamiltonian_descent_quadratic": (so.hamiltonian_descent(H, GAMMA), 1 / (1 + GAMMA * H)),
    "hamiltonian_descent_relativistic": (
        so.hamiltonian_descent(H, GAMMA, so.relativistic_kinetic(1.0, 2.0)),
        1 / (1 + GAMMA * H),
    ),
    "hamiltonian_descent_power": (
        so.hamiltonian_descent(H, GAMMA, so.power_kinetic(1.5, 3.0)),
        1 / (1 + GAMMA * H),
    ),
}


@pytest.mark.parametrize("name", CONFORMAL)
def test_one_step_map_is_conformal_symplectic(name):
    opt, factor = CONFORMAL[name]
    assert float(conformal_symplecticity_error(_step_map(opt), X0, P0, factor)) < 1e-12
    # ... and the certificate notices a wrong factor
    assert float(conformal_symplecticity_error(_step_map(opt), X0, P0, 1.0)) > 1e-3


def test_mixing_breaks_conformal_symplecticity():
    # alpha < 1 mixes in the old x: França et al.'s map is then not conformal symplectic.
    opt = so.relativistic_gd(H, GAMMA, MASS, 1.5, alpha=0.5)
    assert float(conformal_symplecticity_error(_step_map(opt), X0, P0, MU)) > 1e-3


def _trajectory(opt, steps=50, f=_objective, x0=X0):
    state, x, xs = opt.init(x0), x0, []
    step = jax.jit(lambda x, s: opt.update(jax.grad(f)(x), s, x))
    for _ in range(steps):
        updates, state = step(x, state)
        x = optax.apply_updates(x, updates)
        xs.append(x)
    return jnp.stack(xs)


def test_heavy_ball_is_optax_sgd_under_the_change_of_parameters():
    ours = _trajectory(so.conformal_symplectic_momentum(H, GAMMA, MASS))
    theirs = _trajectory(optax.sgd(H**2 / MASS, momentum=MU))
    assert float(jnp.max(jnp.abs(ours - theirs))) < 1e-12


def test_hamiltonian_descent_quadratic_is_heavy_ball():
    # p <- d(p - eps g), x <- x + eps p  is  v <- d v - eps^2 d g  with v = eps p.
    d = 1 / (1 + GAMMA * H)
    ours = _trajectory(so.hamiltonian_descent(H, GAMMA))
    theirs = _trajectory(optax.sgd(H**2 * d, momentum=d))
    assert float(jnp.max(jnp.abs(ours - theirs))) < 1e-12


@pytest.mark.parametrize("alpha", [1.0, 0.0])
def test_relativistic_gd_classical_limits(alpha):
    eps = H**2 / (2 * MASS)
    ours = _trajectory(so.relativistic_gd(H, GAMMA, MASS, math.inf, alpha=alpha))
    if alpha == 1.0:  # heavy ball on the gradient points
        theirs = _trajectory(optax.sgd((1 + MU) * eps, momentum=MU))
    else:  # Nesterov
        theirs = _trajectory(optax.sgd(eps, momentum=MU, nesterov=True))
    assert float(jnp.max(jnp.abs(ours - theirs))) < 1e-12
    # and a huge speed of light is that limit, continuously
    near = _trajectory(so.relativistic_gd(H, GAMMA, MASS, 1e8, alpha=alpha))
    assert float(jnp.max(jnp.abs(near - theirs))) < 1e-9


def _franca_reference(grad, x0, steps, stepsize, mu, delta, alpha):
    """França, Sulam, Robinson & Vidal (2020), Algorithm 1, as published; returns the points
    x_{1/2} where it takes gradients (the next step's, after each step)."""
    x, v, out = np.asarray(x0), np.zeros_like(np.asarray(x0)), []

    def half(x, v):
        return x + np.sqrt(mu) * v / np.sqrt(1 + delta * mu * v @ v)

    for _ in range(steps):
        x_half = half(x, v)
        v_half = np.sqrt(mu) * v - stepsize * np.asarray(grad(jnp.asarray(x_half)))
        x = alpha * x_half + (1 - alpha) * x + v_half / np.sqrt(1 + delta * v_half @ v_half)
        v = np.sqrt(mu) * v_half
        out.append(half(x, v))
    return np.stack(out)


@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.0])
@pytest.mark.parametrize("eps, mu, delta", [(0.05, 0.9, 0.1), (0.01, 0.5, 3.0)])
def test_relativistic_gd_is_the_published_update(alpha, eps, mu, delta):
    params = so.franca_parameters(eps, mu, delta)
    ours = _trajectory(so.relativistic_gd(alpha=alpha, **params), steps=40)
    ref = _franca_reference(jax.grad(_objective), X0, 40, eps, mu, delta, alpha)
    assert np.max(np.abs(np.asarray(ours) - ref)) < 1e-12


def test_relativistic_speed_is_bounded():
    # However large the gradient, a step is two half drifts at speed < c: |step| < h c.
    c = 0.5
    opt = so.relativistic_gd(H, GAMMA, MASS, c)
    updates, _ = opt.update(jnp.array([1e6, -3e7, 2e5]), opt.init(X0), X0)
    assert 0.99 * H * c < float(jnp.linalg.norm(updates)) <= H * c


def _quadratic(kappa, n=20):
    ev = jnp.geomspace(1.0, kappa, n)
    q, _ = jnp.linalg.qr(jr.normal(jr.PRNGKey(0), (n, n)))
    a = (q * ev) @ q.T
    return a, ev


@pytest.mark.parametrize("method", ["conformal_symplectic_momentum", "hamiltonian_descent"])
def test_linear_rate_on_a_strongly_convex_quadratic(method):
    """Heavy ball with Polyak's tuning, step 4/(sqrt L + sqrt l)^2 and momentum
    beta = ((sqrt k - 1)/(sqrt k + 1))^2, converges like sqrt(beta)^k (Polyak 1964)."""
    kappa = 1e4
    a, ev = _quadratic(kappa)
    lo, hi = float(ev[0]), float(ev[-1])
    lr = 4 / (math.sqrt(hi) + math.sqrt(lo)) ** 2
    beta = ((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1)) ** 2
    if method == "conformal_symplectic_momentum":
        h = math.sqrt(lr)  # lr = h^2 / m, beta = exp(-gamma h)
        opt = so.conformal_symplectic_momentum(h, -math.log(beta) / h)
    else:  # lr = eps^2 d, beta = d = 1 / (1 + gamma eps)
        eps = math.sqrt(lr / beta)
        opt = so.hamiltonian_descent(eps, (1 / beta - 1) / eps)
    x0 = jnp.ones(a.shape[0])
    f = lambda x: 0.5 * x @ a @ x  # noqa: E731
    e1 = jnp.linalg.norm(run(opt, f, x0, 300)[0])
    e2 = jnp.linalg.norm(run(opt, f, x0, 600)[0])
    rate = float((e2 / e1) ** (1 / 300))
    assert rate == pytest.approx(math.sqrt(beta), rel=5e-3)


@pytest.mark.parametrize(
    "opt",
    [
        so.relativistic_gd(**so.franca_parameters(1e-3, 0.9, 0.1)),
        so.conformal_symplectic_momentum(0.04, 2.6),
        so.hamiltonian_descent(0.05, 2.0, so.relativistic_kinetic()),
    ],
    ids=["relativistic_gd", "conformal_symplectic_momentum", "hamiltonian_descent"],
)
def test_rosenbrock_to_1e_8(opt):
    rosenbrock = lambda x: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2  # noqa: E731
    x, _ = jax.jit(lambda x: run(opt, rosenbrock, x, 10_000))(jnp.array([-1.2, 1.0]))
    assert float(jnp.max(jnp.abs(x - 1))) < 1e-8


@pytest.mark.parametrize("method", ["csm", "rgd", "hd"])
def test_riemannian_forms_find_the_leading_eigenvector(method, getkey):
    n = 12
    b = jr.normal(getkey(), (n, n))
    a = b + b.T
    sphere = sm.Sphere(n)
    opt = {
        "csm": so.conformal_symplectic_momentum(0.2, 3.0, manifolds=sphere),
        "rgd": so.relativistic_gd(0.2, 3.0, 1.0, 5.0, manifolds=sphere),
        "hd": so.hamiltonian_descent(0.2, 3.0, so.relativistic_kinetic(), manifolds=sphere),
    }[method]
    x, _ = jax.jit(lambda x: run(opt, lambda x: -x @ a @ x, x, 3000))(sphere.random_point(getkey()))
    w = jnp.linalg.eigvalsh(a)
    assert float(x @ a @ x) == pytest.approx(float(w[-1]), abs=1e-9)
    assert float(sphere.constraint_error(x)) < 1e-13


def test_stiefel_leading_eigenspace_with_transported_momentum(getkey):
    n, p = 10, 3
    b = jr.normal(getkey(), (n, n))
    a = b + b.T
    st = sm.Stiefel(n, p)
    opt = so.relativistic_gd(0.1, 2.0, 1.0, 5.0, manifolds=st)
    x, _ = jax.jit(lambda x: run(opt, lambda x: -jnp.trace(x.T @ a @ x), x, 4000))(
        st.random_point(getkey())
    )
    top = jnp.sum(jnp.linalg.eigvalsh(a)[-p:])
    assert float(jnp.trace(x.T @ a @ x)) == pytest.approx(float(top), abs=1e-8)
    assert float(st.constraint_error(x)) < 1e-13


def test_pytrees_chain_schedule_inject_hyperparams_no_retrace():
    params = {"w": jnp.array([[0.5, -1.0], [2.0, 0.1]]), "b": jnp.array([0.3, -0.2])}
    f = lambda t: jnp.sum(t["w"] ** 4) + jnp.sum((t["b"] - 1) ** 2) + t["w"][0, 0] * t["b"][1]  # noqa: E731
    schedule = optax.exponential_decay(0.05, 100, 0.5)
    traces = []
    for opt in [
        optax.chain(optax.clip_by_global_norm(1.0), so.relativistic_gd(schedule, 1.0)),
        optax.inject_hyperparams(so.relativistic_gd)(learning_rate=0.05, damping=1.0),
        optax.inject_hyperparams(so.conformal_symplectic_momentum)(learning_rate=0.1, damping=2.0),
        so.hamiltonian_descent(schedule, 1.0, so.power_kinetic(2.0, 1.5)),
    ]:
        state = opt.init(params)

        @jax.jit
        def step(params, state):
            traces.append(1)
            u, state = opt.update(jax.grad(f)(params), state, params)
            return optax.apply_updates(params, u), state

        n = len(traces)
        p = params
        f0 = float(f(p))
        for _ in range(200):
            p, state = step(p, state)
        assert len(traces) == n + 1  # one trace for 200 calls
        assert float(f(p)) < f0 - 0.5
        assert jax.tree_util.tree_structure(p) == jax.tree_util.tree_structure(params)
    # a hyperparameter changed in the state changes the step, without a retrace
    opt = optax.inject_hyperparams(so.relativistic_gd)(learning_rate=0.05, damping=1.0)
    state = opt.init(params)
    step = jax.jit(lambda p, s: opt.update(jax.grad(f)(p), s, p))
    u1, _ = step(params, state)
    state.hyperparams["learning_rate"] = 2 * state.hyperparams["learning_rate"]
    u2, _ = step(params, state)
    assert step._cache_size() == 1
    assert not np.allclose(u1["w"], u2["w"])


@pytest.mark.parametrize(
    "make",
    [
        lambda: so.conformal_symplectic_momentum(0.1, 1.0),
        lambda: so.relativistic_gd(0.1, 1.0, 1.0, 2.0),
        lambda: so.hamiltonian_descent(0.1, 1.0, so.relativistic_kinetic()),
        lambda: so.relativistic_gd(0.1, 1.0, manifolds=sm.Sphere(4)),
    ],
)
def test_float32_keeps_dtypes_and_matches_float64(make):
    x64 = jnp.array([0.5, -0.5, 0.5, 0.5])
    x32 = x64.astype(jnp.float32)
    f = lambda x: 0.25 * jnp.sum(x**4) + x[0] * x[1] + jnp.sum(x)  # noqa: E731
    with jax.numpy_dtype_promotion("standard"):
        y32, s32 = run(make(), f, x32, 100)
        y64, _ = run(make(), f, x64, 100)
    assert y32.dtype == jnp.float32
    for leaf in jax.tree_util.tree_leaves(s32):
        assert leaf.dtype in (jnp.float32, jnp.int32, jnp.bool_), leaf.dtype
    assert float(jnp.max(jnp.abs(y32.astype(jnp.float64) - y64))) < 1e-5


def test_vmap_over_problems():
    opt = so.relativistic_gd(0.1, 1.0, 1.0, 2.0)
    targets = jnp.linspace(-1.0, 1.0, 5)

    def solve(t):
        return run(opt, lambda x: jnp.sum((x - t) ** 2) + 0.1 * jnp.sum(x**4), jnp.zeros(3), 300)[0]

    batched = jax.vmap(solve)(targets)
    for i, t in enumerate(targets):
        assert jnp.allclose(batched[i], solve(t), atol=1e-14)


def test_bad_hyperparameters():
    with pytest.raises(
        ValueError, match=r"`conformal_symplectic_momentum\(...\)` needs damping >= 0"
    ):
        so.conformal_symplectic_momentum(0.1, -1.0)
    with pytest.raises(ValueError, match="needs mass positive and finite, got mass=0.0"):
        so.conformal_symplectic_momentum(0.1, 1.0, mass=0.0)
    with pytest.raises(ValueError, match="`relativistic_gd.*` needs mass positive"):
        so.relativistic_gd(0.1, 1.0, mass=-2.0)
    with pytest.raises(ValueError, match="needs speed_of_light positive"):
        so.relativistic_gd(0.1, 1.0, speed_of_light=0.0)
    with pytest.raises(ValueError, match="`relativistic_kinetic.*` needs speed_of_light positive"):
        so.relativistic_kinetic(1.0, -3.0)
    with pytest.raises(ValueError, match=r"needs alpha in \[0, 1\]"):
        so.relativistic_gd(0.1, 1.0, alpha=1.5)
    with pytest.raises(
        ValueError, match=r"`power_kinetic\(a=0.5, A=2.0\)` needs a finite and >= 1"
    ):
        so.power_kinetic(0.5, 2.0)
    # (under the test suite's runtime type checker this is its TypeError, else ours)
    with pytest.raises((ValueError, TypeError), match="`kinetic` must be a function|kinetic"):
        so.hamiltonian_descent(0.1, 1.0, kinetic=2.0)
    with pytest.raises(ValueError, match="0 < mu <= 1"):
        so.franca_parameters(0.1, 1.5, 0.1)
    with pytest.raises(
        ValueError, match=r"needs learning_rate positive and finite \(the time step h\)"
    ):
        so.relativistic_gd(-0.1, 1.0)
    with pytest.raises(
        ValueError, match=r"needs learning_rate positive and finite \(the time step h\)"
    ):
        so.hamiltonian_descent(0.0, 1.0)
    opt = so.relativistic_gd(0.1, 1.0, manifolds=sm.Sphere(2))
    with pytest.raises(ValueError, match="needs `params`"):
        opt.update(jnp.ones(2), opt.init(jnp.array([1.0, 0.0])))
