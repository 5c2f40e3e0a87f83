"""Layer-specific promises: constant-memory gradients, i-ResNet's series and inverse, HNNs,
ODE blocks, orthogonality, and the errors bad input gets."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax
import pytest

import structjax.check as check
import structjax.integrators as si
import structjax.nn as snn

from ..helpers import tree_max_abs_diff
from .cases import perturb


def _grads(model, xs):
    def loss(model, xs):
        ys, lds = jax.vmap(model.forward_and_log_det)(xs)
        return sum(jnp.sum(jnp.sin(y)) for y in jtu.tree_leaves(ys)) + jnp.sum(lds)

    return eqx.filter_jit(eqx.filter_grad(loss))(model, xs)


BLOCKS = {
    "revnet": (lambda k: snn.revnet_block(8, 16, key=k), lambda k: jax.random.normal(k, (5, 8))),
    "verlet": (
        lambda k: snn.VerletBlock(4, 16, 0.3, key=k),
        lambda k: tuple(jax.random.normal(kk, (5, 4)) for kk in jax.random.split(k)),
    ),
    "affine": (lambda k: snn.AffineCoupling(8, 16, key=k), lambda k: jax.random.normal(k, (5, 8))),
}


@pytest.mark.parametrize("block", BLOCKS)
def test_reversible_gradient_equals_autodiff(block, getkey):
    make, example = BLOCKS[block]
    key, noise = getkey(), getkey()
    reversible, stored = (
        perturb(snn.Reversible(make, 8, memory, key=key), noise, 0.1)
        for memory in ("reversible", "stored")
    )
    xs = example(getkey())
    g_rev, g_sto = (eqx.filter(_grads(m, xs), eqx.is_inexact_array) for m in (reversible, stored))
    scale = float(tree_max_abs_diff(g_sto, jtu.tree_map(jnp.zeros_like, g_sto)))
    assert scale > 1e-3
    assert float(tree_max_abs_diff(g_rev, g_sto)) < 1e-10
    gx_rev = jax.grad(lambda x: jnp.sum(jnp.cos(reversible(x)[0])))(
        jtu.tree_map(lambda a: a[0], xs)
    )
    gx_sto = jax.grad(lambda x: jnp.sum(jnp.cos(stored(x)[0])))(jtu.tree_map(lambda a: a[0], xs))
    assert float(tree_max_abs_diff(gx_rev, gx_sto)) < 1e-10


def _temp_bytes(depth: int, memory: str) -> int:
    model = snn.Reversible(lambda k: snn.revnet_block(32, 32, key=k), depth, memory,
                           key=jax.random.key(0))  # fmt: skip
    xs = jnp.linspace(-1.0, 1.0, 256 * 32).reshape(256, 32)
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss(params, xs):
        return jnp.sum(jax.vmap(eqx.combine(params, static))(xs) ** 2)

    compiled = jax.jit(jax.grad(loss)).lower(params, xs).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_reversible_memory_is_flat_in_depth():
    # The compiler's own accounting of scratch memory (arguments and outputs, the parameters
    # and their gradients, are the same for both): flat for the reversible stack, linear in
    # depth when activations are stored.
    rev = [_temp_bytes(d, "reversible") for d in (4, 64)]
    sto = [_temp_bytes(d, "stored") for d in (4, 64)]
    assert rev[1] <= 1.5 * rev[0]
    assert sto[1] >= 8 * sto[0]
    assert sto[1] >= 8 * rev[1]


def test_hamiltonian_resnet_classifies_and_inverts(getkey):
    key = getkey()
    net = snn.HamiltonianResNet(5, 3, dim=4, width=8, depth=6, step=0.2, key=key)
    x = jax.random.normal(getkey(), (5,))
    assert net(x).shape == (3,)
    q = net.lift(x)
    y = net.body((q, jnp.zeros_like(q)))
    back = net.body.inverse(y)
    assert float(tree_max_abs_diff(back, (q, jnp.zeros_like(q)))) < 1e-12
    stored = snn.HamiltonianResNet(5, 3, 4, 8, 6, 0.2, memory="stored", key=key)
    g1, g2 = (
        eqx.filter(eqx.filter_grad(lambda m: jnp.sum(m(x) ** 2))(m), eqx.is_inexact_array)
        for m in (net, stored)
    )
    assert float(tree_max_abs_diff(g1, g2)) < 1e-10
    with pytest.raises(ValueError, match="shape \\(5,\\)"):
        net(jnp.ones(4))


# --- i-ResNet ---------------------------------------------------------------------------------


@pytest.mark.parametrize("c", [0.5, 0.9])
def test_iresnet_log_det_within_its_stated_bound(c, getkey):
    block = perturb(snn.InvertibleResidual(4, 16, coefficient=c, key=getkey()), getkey())
    x = 2 * jax.random.normal(getkey(), (4,))
    err = check.log_det_error(block.forward, lambda x: block.forward_and_log_det(x)[1], x)
    assert float(err) <= block.log_det_truncation_bound + 1e-12
    assert float(err) < 1e-8
    # truncating early leaves an error the bound accounts for, and would be caught
    short = snn.InvertibleResidual(4, 16, coefficient=c, log_det_terms=2, key=getkey())
    short = perturb(short, getkey())
    err_short = check.log_det_error(short.forward, lambda x: short.forward_and_log_det(x)[1], x)
    assert float(err_short) <= short.log_det_truncation_bound
    assert short.log_det_truncation_bound > 1e-3


def test_iresnet_residual_is_a_contraction_and_inverse_differentiates(getkey):
    block = perturb(snn.InvertibleResidual(3, 8, coefficient=0.8, key=getkey()), getkey())
    x = jax.random.normal(getkey(), (3,))
    jac = jax.jacfwd(block.residual)(x)
    assert float(jnp.linalg.norm(jac, 2)) <= 0.8 + 1e-12
    y = block(x)
    # d inverse / dy = (I + J_g(x))^{-1}, through optimistix's implicit adjoint
    j_inv = jax.jacrev(block.inverse)(y)
    assert np.allclose(j_inv, jnp.linalg.inv(jnp.eye(3) + jac), atol=1e-10)


def test_iresnet_refuses_a_coefficient_at_or_above_one(getkey):
    for c in (1.0, 1.5, 0.0):
        with pytest.raises(ValueError, match="0 < c < 1"):
            snn.InvertibleResidual(4, coefficient=c, key=getkey())


# --- Hamiltonian networks and ODE blocks ------------------------------------------------------


def test_hnn_vector_field_is_the_symplectic_gradient(getkey):
    hnn = snn.HamiltonianNet(2, 16, key=getkey())
    q, p = jax.random.normal(getkey(), (2,)), jax.random.normal(getkey(), (2,))
    dq, dp = hnn((q, p))
    assert np.allclose(dq, jax.grad(hnn.hamiltonian, 1)(q, p), atol=1e-14)
    assert np.allclose(dp, -jax.grad(hnn.hamiltonian, 0)(q, p), atol=1e-14)
    # H is a first integral of the field: dH/dt = grad H . J grad H = 0
    dh = jnp.dot(jax.grad(hnn.hamiltonian, 0)(q, p), dq) + jnp.dot(
        jax.grad(hnn.hamiltonian, 1)(q, p), dp
    )
    assert abs(float(dh)) < 1e-14
    sep = snn.SeparableHamiltonianNet(2, 16, key=getkey())
    dq, dp = sep((q, p))
    assert np.allclose(dq, jax.grad(sep.kinetic)(p), atol=1e-14)
    assert np.allclose(dp, -jax.grad(sep.potential)(q), atol=1e-14)


def test_hnn_learns_the_harmonic_oscillator_and_conserves_energy(getkey):
    # Fit T(p) + V(q) to the derivatives of H = (q^2 + p^2)/2 at random points, then roll out:
    # the true energy's error stays bounded (the learned system is symplectically integrated).
    net = snn.SeparableHamiltonianNet(1, 16, key=getkey())
    qs, ps = jax.random.uniform(getkey(), (2, 128, 1), minval=-1.5, maxval=1.5)
    opt = optax.adam(1e-2)

    params, static = eqx.partition(net, eqx.is_inexact_array)

    def loss(params):
        net = eqx.combine(params, static)
        dq, dp = jax.vmap(lambda q, p: net((q, p)))(qs, ps)
        return jnp.mean((dq - ps) ** 2 + (dp + qs) ** 2)

    @jax.jit
    def train(params):
        def step(carry, _):
            params, state = carry
            value, g = jax.value_and_grad(loss)(params)
            updates, state = opt.update(g, state)
            return (optax.apply_updates(params, updates), state), value

        with jax.numpy_dtype_promotion("standard"):  # optax's bias correction
            carry = (params, opt.init(params))
            (params, _), losses = jax.lax.scan(step, carry, None, length=1500)
        return params, losses

    params, losses = train(params)
    net = eqx.combine(params, static)
    assert float(losses[-1]) < 1e-3 * float(losses[0])
    ys = net.rollout((jnp.array([1.0]), jnp.array([0.0])), dt=0.1, num_steps=2000).ys
    energy = 0.5 * (ys[0] ** 2 + ys[1] ** 2)[:, 0]
    assert float(jnp.max(jnp.abs(energy - 0.5))) < 0.05  # over 30 periods


def test_ode_block_is_a_resnet_and_converges(getkey):
    mlp = eqx.nn.MLP(3, 3, 8, 1, jnp.tanh, key=getkey())
    field = lambda t, y, args: mlp(y)  # noqa: E731
    y = jax.random.normal(getkey(), (3,))
    one = snn.ODEBlock(field, diffrax.Euler(), num_steps=1, dt=0.3)
    assert np.allclose(one(y), y + 0.3 * mlp(y), atol=1e-15)  # a residual block
    rk4 = snn.ODEBlock(field, diffrax.Tsit5(), num_steps=64, dt=1 / 64)
    ref = diffrax.diffeqsolve(
        diffrax.ODETerm(field), diffrax.Tsit5(), 0.0, 1.0, 0.01, y,
        stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-12),
    ).ys[-1]  # fmt: skip
    assert np.allclose(rk4(y), ref, atol=1e-9)


def test_ode_block_reversible_adjoint_matches_autodiff(getkey):
    net = snn.SeparableHamiltonianNet(2, 8, key=getkey())
    fields = tuple(t.vector_field for t in net.terms)
    make = lambda adjoint: snn.ODEBlock(fields, si.VelocityVerlet(), 50, 0.05, adjoint)  # noqa: E731
    y = (jax.random.normal(getkey(), (2,)), jax.random.normal(getkey(), (2,)))
    grads = [
        eqx.filter_grad(lambda b: jnp.sum(b(y)[0] ** 2 + jnp.sin(b(y)[1])))(make(a))
        for a in ("autodiff", "reversible")
    ]
    assert float(tree_max_abs_diff(*grads)) < 1e-10


# --- orthogonality ---------------------------------------------------------------------------


@pytest.mark.parametrize("parametrization", ["stiefel", "cayley", "expm", "bjorck"])
@pytest.mark.parametrize("sizes", [(5, 8), (8, 3), (6, 6)])
def test_orthogonal_linear_is_orthogonal(parametrization, sizes, getkey):
    layer = snn.OrthogonalLinear(*sizes, parametrization=parametrization, key=getkey())
    if parametrization != "stiefel":
        layer = perturb(layer, getkey(), 0.5)
    w = layer.matrix
    assert w.shape == (sizes[1], sizes[0])
    gram = w.T @ w if sizes[1] >= sizes[0] else w @ w.T
    assert float(jnp.max(jnp.abs(gram - jnp.eye(min(sizes))))) < 1e-12


def test_orthogonal_conv_is_an_isometry(getkey):
    for size in (5, 6):  # odd and even (a Nyquist frequency) sizes
        conv = perturb(snn.OrthogonalConv2d(3, 3, size, use_bias=False, key=getkey()), getkey())
        x = jax.random.normal(getkey(), (3, size, size))
        jac = jax.jacfwd(conv)(x).reshape(x.size, x.size)
        assert float(jnp.max(jnp.abs(jac.T @ jac - jnp.eye(x.size)))) < 1e-12
        # and it is a convolution: it commutes with circular shifts
        shift = lambda z: jnp.roll(z, (1, 2), axis=(1, 2))  # noqa: E731
        assert np.allclose(conv(shift(x)), shift(conv(x)), atol=1e-12)


def test_aol_bound_holds_for_any_weight(getkey):
    layer = snn.AOLLinear(7, 5, key=getkey())
    layer = eqx.tree_at(lambda m: m.weight, layer, 100 * jax.random.normal(getkey(), (5, 7)))
    assert float(jnp.linalg.norm(layer.matrix, 2)) <= 1 + 1e-12


def test_group_sort_sorts_groups():
    out = snn.GroupSort(3)(jnp.array([3.0, 1.0, 2.0, -1.0, -3.0, 0.0]))
    assert np.array_equal(out, [1.0, 2.0, 3.0, -3.0, -1.0, 0.0])


# --- certificates on known answers ------------------------------------------------------------


def test_certificates_catch_wrong_answers(getkey):
    a = jax.random.normal(getkey(), (4, 4)) + 4 * jnp.eye(4)
    f = lambda x: a @ x  # noqa: E731
    x = jax.random.normal(getkey(), (4,))
    good_inverse = lambda y: jnp.linalg.solve(a, y)  # noqa: E731
    assert float(check.inversion_error(f, good_inverse, x)) < 1e-13
    assert float(check.inversion_error(f, lambda y: y / 4, x)) > 1e-2
    logdet = jnp.linalg.slogdet(a)[1]
    assert float(check.log_det_error(f, lambda x: logdet, x)) < 1e-13
    assert float(check.log_det_error(f, lambda x: logdet + 1e-6, x)) > 5e-7
    sigma = float(jnp.linalg.norm(a, 2))
    found = float(check.lipschitz_lower_bound(f, x, getkey(), steps=300))
    assert sigma * (1 - 1e-3) <= found <= sigma * (1 + 1e-12)


# --- bad input -------------------------------------------------------------------------------


def test_clear_errors(getkey):
    k = getkey()
    for make in (snn.AffineCoupling, snn.AdditiveCoupling):
        with pytest.raises(ValueError, match="even dimension"):
            make(5, key=k)
        with pytest.raises(ValueError, match="shape \\(6,\\)"):
            make(6, key=k)(jnp.ones(5))
    with pytest.raises(ValueError, match="even dimension"):
        snn.SymplecticFlow(snn.GSympNet(2, key=k), 5)
    with pytest.raises(ValueError, match="shape \\(4,\\)"):
        snn.SpectralNormLinear(4, 3, key=k)(jnp.ones(3))
    with pytest.raises(ValueError, match="c > 0"):
        snn.SpectralNormLinear(4, 3, coefficient=0.0, key=k)
    with pytest.raises(ValueError, match="tuple `\\(q, p\\)`"):
        snn.GSympNet(3, key=k)(jnp.ones(6))
    with pytest.raises(ValueError, match="q.*shape \\(3,\\)"):
        snn.GSympNet(3, key=k)((jnp.ones(2), jnp.ones(3)))
    with pytest.raises(ValueError, match="kind must be"):
        snn.GradientModule(3, 4, "sideways", key=k)
    with pytest.raises(ValueError, match="multiple of 2"):
        snn.GroupSort(2)(jnp.ones(5))
    with pytest.raises(ValueError, match="shape \\(2, 4, 4\\)"):
        snn.OrthogonalConv2d(2, 3, 4, key=k)(jnp.ones((2, 5, 5)))
    with pytest.raises(ValueError, match="parametrization"):
        snn.OrthogonalLinear(3, 4, parametrization="svd", key=k)
    with pytest.raises(ValueError, match="memory"):
        snn.Reversible(lambda k: snn.revnet_block(4, key=k), 3, "recompute", key=k)
    with pytest.raises(ValueError, match="dt > 0"):
        snn.ODEBlock(lambda t, y, a: y, diffrax.Euler(), 4, 0.0)
    with pytest.raises(ValueError, match="step h > 0"):
        snn.VerletBlock(3, 4, step=-0.1, key=k)
    # (under jaxtyping's runtime checks, its own error on the mismatched "dim" comes first)
    with pytest.raises((ValueError, TypeError), match="q.*shape \\(2,\\)|dim"):
        snn.HamiltonianNet(2, key=k).hamiltonian(jnp.ones(3), jnp.ones(2))


# --- interop ---------------------------------------------------------------------------------


def test_a_structjax_flow_inside_a_flowjax_distribution(getkey):
    # flowjax is in the [test] extra: this runs in CI, it does not skip.
    from flowjax.bijections import AbstractBijection as FlowjaxBijection
    from flowjax.distributions import StandardNormal, Transformed

    class FromStructjax(FlowjaxBijection):
        # The whole adapter: flowjax's `transform` is structjax's `forward`.
        bijection: snn.AbstractBijection
        shape: tuple[int, ...]
        cond_shape: None = None

        def transform_and_log_det(self, x, condition=None):
            return self.bijection.forward_and_log_det(x)

        def inverse_and_log_det(self, y, condition=None):
            return self.bijection.inverse_and_log_det(y)

    keys = jax.random.split(getkey(), 3)
    flow = snn.Chain(
        [snn.AffineCoupling(4, 8, flip=bool(i % 2), key=k) for i, k in enumerate(keys)]
    )
    flow = perturb(flow, getkey())
    dist = Transformed(StandardNormal((4,)), FromStructjax(flow, (4,)))
    xs = dist.sample(jax.random.key(0), (16,))  # flowjax wants typed keys
    assert xs.shape == (16, 4)

    def log_prob(x):
        z, ld = flow.inverse_and_log_det(x)
        return jnp.sum(jax.scipy.stats.norm.logpdf(z)) + ld

    assert np.allclose(dist.log_prob(xs), jax.vmap(log_prob)(xs), atol=1e-12)
    # and flowjax trains it: the gradient of its loss reaches structjax's parameters
    grads = eqx.filter_grad(lambda d: -jnp.mean(d.log_prob(xs)))(dist)
    leaves = jtu.tree_leaves(eqx.filter(grads.bijection.bijection, eqx.is_inexact_array))
    assert leaves and max(float(jnp.max(jnp.abs(g))) for g in leaves) > 0


def test_reversible_gradient_for_an_ensemble_under_nested_vmap():
    # vmap over models (batched parameters) outside vmap over examples: the batching rule's
    # other branch.
    xs = jnp.linspace(0.0, 1.0, 5 * 8).reshape(5, 8)
    keys = jax.random.split(jax.random.key(1), 2)

    def grads(memory):
        make = lambda k: snn.Reversible(lambda k: snn.revnet_block(8, 8, key=k), 3, memory, key=k)  # noqa: E731
        models = eqx.filter_vmap(make)(keys)
        loss = lambda ms: jnp.sum(jnp.sin(eqx.filter_vmap(lambda m: jax.vmap(m)(xs))(ms)))  # noqa: E731
        return eqx.filter(eqx.filter_grad(loss)(models), eqx.is_inexact_array)

    reversible, stored = grads("reversible"), grads("stored")
    assert float(tree_max_abs_diff(reversible, stored)) < 1e-12
