"""`CNF` (FFJORD): log-determinant against the Jacobian, Hutchinson unbiasedness, inversion
by the backward solve, the symplectic adjoint's gradient, jit/vmap, float32, refusals and a
short density-fitting run on two moons."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import structjax.nn as snn

X = jnp.array([0.5, -0.3])


def flow(num_steps=8, **kw):
    return snn.CNF(2, width=16, num_steps=num_steps, key=jax.random.key(0), **kw)


def perturbed(cnf, scale=0.5):
    """Larger weights than the initialisation, so the field is far from zero."""
    leaves, tree = jax.tree_util.tree_flatten(cnf)
    keys = iter(jax.random.split(jax.random.key(7), len(leaves)))
    leaves = [x + scale * jax.random.normal(next(keys), x.shape, x.dtype)
              if eqx.is_inexact_array(x) else x for x in leaves]  # fmt: skip
    return jax.tree_util.tree_unflatten(tree, leaves)


def test_log_det_matches_the_jacobian_and_the_inverse():
    errs, inv_errs = [], []
    for n in (8, 32):
        cnf = perturbed(flow(n))
        z, ld = cnf.forward_and_log_det(X)
        jac = jax.jacrev(cnf.forward)(X)  # the symplectic adjoint is reverse mode
        errs.append(abs(float(ld - jnp.linalg.slogdet(jac)[1])))
        x_back, ld_inv = cnf.inverse_and_log_det(z)
        inv_errs.append(float(jnp.max(jnp.abs(x_back - X))))
        assert abs(float(ld + ld_inv)) < 100 * errs[-1] + 1e-12
    assert errs[1] < 1e-8 and errs[1] < errs[0] / 30, errs
    assert inv_errs[1] < 1e-8 and inv_errs[1] < inv_errs[0] / 30, inv_errs


def test_hutchinson_is_unbiased():
    cnf = perturbed(flow(trace="hutchinson"))
    exact = perturbed(flow()).forward_and_log_det(X)[1]
    keys = jax.random.split(jax.random.key(1), 2000)
    lds = jax.jit(jax.vmap(lambda k: cnf.forward_and_log_det(X, k)[1]))(keys)
    se = float(jnp.std(lds)) / np.sqrt(len(keys))
    assert float(jnp.std(lds)) > 1e-3  # a real estimate, not the exact trace
    assert abs(float(jnp.mean(lds) - exact)) < 4 * se
    # the map itself does not depend on the probe
    assert float(jnp.max(jnp.abs(cnf.forward(X) - perturbed(flow()).forward(X)))) < 1e-14


def test_gaussian_probe_is_unbiased():
    cnf = perturbed(flow(trace="hutchinson", noise="gaussian"))
    exact = perturbed(flow()).forward_and_log_det(X)[1]
    keys = jax.random.split(jax.random.key(2), 2000)
    lds = jax.jit(jax.vmap(lambda k: cnf.forward_and_log_det(X, k)[1]))(keys)
    assert abs(float(jnp.mean(lds) - exact)) < 4 * float(jnp.std(lds)) / np.sqrt(len(keys))


def test_symplectic_gradient_equals_autodiff():
    xs = jax.random.normal(jax.random.key(3), (5, 2))

    def loss(cnf):
        return -jnp.mean(jax.vmap(cnf.log_prob)(xs))

    g_s = eqx.filter_grad(loss)(perturbed(flow())).net
    g_a = eqx.filter_grad(loss)(perturbed(flow(adjoint="autodiff"))).net
    diff = jax.tree_util.tree_map(
        lambda a, b: jnp.max(jnp.abs(a - b)),
        eqx.filter(g_s, eqx.is_array),
        eqx.filter(g_a, eqx.is_array),
    )
    print("grad max abs diff", max(float(d) for d in jax.tree_util.tree_leaves(diff)))
    assert max(float(d) for d in jax.tree_util.tree_leaves(diff)) < 1e-10


def test_jit_vmap_float32():
    cnf = flow()
    xs = jax.random.normal(jax.random.key(4), (6, 2))
    zs, lds = jax.jit(jax.vmap(cnf.forward_and_log_det))(xs)
    for i in range(2):
        z, ld = cnf.forward_and_log_det(xs[i])
        assert float(jnp.max(jnp.abs(z - zs[i]))) < 1e-13 and abs(float(ld - lds[i])) < 1e-13
    f32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a)
                                 else a, cnf)  # fmt: skip
    z32, ld32 = f32.forward_and_log_det(xs[0].astype(jnp.float32))
    assert z32.dtype == jnp.float32 and ld32.dtype == jnp.float32
    assert float(jnp.max(jnp.abs(z32.astype(jnp.float64) - zs[0]))) < 1e-5
    assert float(jnp.max(jnp.abs(f32.inverse(z32).astype(jnp.float64) - xs[0]))) < 1e-5


@pytest.mark.parametrize("jit", [False, True])
def test_refusals_at_call_time(jit):
    cnf, hut = flow(), flow(trace="hutchinson")
    wrap = eqx.filter_jit if jit else (lambda f: f)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        wrap(cnf.forward_and_log_det)(jnp.zeros(3))
    with pytest.raises(TypeError):  # (jaxtyping's check, or structjax's under no jaxtyping)
        wrap(cnf.forward)(jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match="CNF.forward_and_log_det.*key"):
        wrap(hut.forward_and_log_det)(X)
    with pytest.raises(ValueError, match="CNF.inverse_and_log_det.*key"):
        wrap(hut.inverse_and_log_det)(X)
    bad = jnp.array([jnp.nan, 0.0])
    err = RuntimeError if jit else ValueError  # (equinox's run-time error under jit)
    with pytest.raises(err, match="finite"):
        wrap(cnf.forward_and_log_det)(bad)


def test_refusals_at_construction():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="dim"):
        snn.CNF(0, key=key)
    with pytest.raises(TypeError, match="num_steps"):
        snn.CNF(2, num_steps=2.5, key=key)  # pyright: ignore[reportArgumentType]
    with pytest.raises(ValueError, match="num_steps"):
        snn.CNF(2, num_steps=0, key=key)
    with pytest.raises(ValueError, match="t1"):
        snn.CNF(2, t1=-1.0, key=key)
    with pytest.raises(ValueError, match="trace"):
        snn.CNF(2, trace="hutch", key=key)
    with pytest.raises(ValueError, match="adjoint"):
        snn.CNF(2, adjoint="reversible", key=key)


def two_moons(n, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    upper = rng.random(n) < 0.5
    x = np.where(upper, np.cos(t), 1 - np.cos(t))
    y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
    pts = np.stack([x, y], 1) + 0.05 * rng.normal(size=(n, 2))
    return jnp.asarray((pts - pts.mean(0)) / pts.std(0))


def test_training_on_two_moons_lowers_the_nll():
    data = two_moons(256)
    cnf = snn.CNF(2, width=32, num_steps=4, key=jax.random.key(5))
    opt = optax.adam(2e-2)

    def nll(cnf):
        return -jnp.mean(jax.vmap(cnf.log_prob)(data))

    @eqx.filter_jit
    def step(cnf, state):
        loss, g = eqx.filter_value_and_grad(nll)(cnf)
        updates, state = opt.update(g, state)
        return eqx.apply_updates(cnf, updates), state, loss

    with jax.numpy_dtype_promotion("standard"):  # optax's step counter is int32
        state = opt.init(eqx.filter(cnf, eqx.is_array))
        before = float(eqx.filter_jit(nll)(cnf))
        for _ in range(60):
            cnf, state, _ = step(cnf, state)
    after = float(eqx.filter_jit(nll)(cnf))
    print(f"two moons NLL {before:.4f} -> {after:.4f}")
    assert after < before - 0.1
