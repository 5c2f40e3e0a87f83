"""Every documented refusal of `structjax.nn`, eagerly and inside `jax.jit` (one table), the
dtype policy (integer/complex inputs refused, 16-bit parameters and inputs work), and no
recompilation of repeated eager calls (counted in the conformance suite)."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import jaxtyping
import numpy as np
import pytest

import structjax.check as check
import structjax.nn as snn
from structjax._guards import point_tolerance

from ..helpers import assert_refused

K = jax.random.PRNGKey(0)
V6, V4 = jnp.ones(6), jnp.ones(4)
PHASE = (jnp.ones(3), jnp.ones(3))


def _orth(**kw):
    return snn.OrthogonalLinear(4, 4, key=K, **kw)


def _iresnet_inverse(y):
    return snn.InvertibleResidual(4, 8, coefficient=0.5, key=K).inverse(y)


# (id, fn, args, match): `fn(*args)` must be refused eagerly and under `jax.jit`. Arguments
# given as `args` are traced under jit (a traced hyperparameter is refused as such).
REFUSALS = [
    # sizes, counts and coefficients: static configuration
    ("orthogonal bjorck_iterations < 0",
     lambda: _orth(parametrization="bjorck", bjorck_iterations=-1), (), "bjorck_iterations >= 0"),
    ("orthogonal bjorck_iterations float",
     lambda: _orth(parametrization="bjorck", bjorck_iterations=2.5), (), "bjorck_iterations as"),
    ("orthogonal size 0", lambda: snn.OrthogonalLinear(0, 4, key=K), (), "in_features >= 1"),
    ("orthogonal size float", lambda: snn.OrthogonalLinear(4.0, 4, key=K), (), "in_features as"),
    ("orthogonal parametrization", lambda: _orth(parametrization="svd"), (), "parametrization"),
    ("orthogonal int dtype", lambda: _orth(dtype=jnp.int32), (), "real floating-point dtype"),
    ("orthogonal conv kernel > size", lambda: snn.OrthogonalConv2d(2, 5, 4, key=K), (),
     "kernel_size <= size"),
    ("spectral c <= 0", lambda: snn.SpectralNormLinear(4, 3, 0.0, key=K), (), "c > 0"),
    ("spectral c nan", lambda: snn.SpectralNormLinear(4, 3, float("nan"), key=K), (), "c > 0"),
    ("spectral c traced", lambda c: snn.SpectralNormLinear(4, 3, c, key=K), (-1.0,),
     "coefficient"),
    ("aol size 0", lambda: snn.AOLLinear(4, 0, key=K), (), "out_features >= 1"),
    ("groupsort 0", lambda: snn.GroupSort(0), (), "group_size >= 1"),
    ("groupsort float", lambda: snn.GroupSort(1.5), (), "group_size as"),
    ("iresnet c >= 1", lambda: snn.InvertibleResidual(4, coefficient=1.0, key=K), (),
     "0 < c < 1"),
    ("iresnet c traced", lambda c: snn.InvertibleResidual(4, coefficient=c, key=K), (1.5,),
     "coefficient"),
    ("iresnet log_det_tol <= 0", lambda: snn.InvertibleResidual(4, log_det_tol=-1.0, key=K), (),
     "log_det_tol > 0"),
    ("iresnet log_det_terms 0", lambda: snn.InvertibleResidual(4, log_det_terms=0, key=K), (),
     "log_det_terms >= 1"),
    ("coupling odd dim", lambda: snn.AffineCoupling(5, key=K), (), "even dimension"),
    ("coupling width 0", lambda: snn.AdditiveCoupling(4, 0, key=K), (), "width >= 1"),
    ("coupling depth float", lambda: snn.AffineCoupling(4, 8, 1.5, key=K), (), "depth as"),
    ("chain of nothing", lambda: snn.Chain([]), (), "at least one bijection"),
    ("symplectic flow odd", lambda: snn.SymplecticFlow(snn.GSympNet(2, key=K), 5), (),
     "even dimension"),
    ("gsympnet layers 0", lambda: snn.GSympNet(2, 0, key=K), (), "layers >= 1"),
    ("gsympnet width 0", lambda: snn.GSympNet(2, 2, 0, key=K), (), "width >= 1"),
    ("gradient module kind", lambda: snn.GradientModule(3, 4, "sideways", key=K), (),
     "kind must be"),
    ("linear module sublayers 0", lambda: snn.LinearModule(3, 0, key=K), (), "sublayers >= 1"),
    ("lasympnet dim 0", lambda: snn.LASympNet(0, key=K), (), "dim >= 1"),
    ("verlet step <= 0", lambda: snn.VerletBlock(3, 4, step=-0.1, key=K), (), "step h > 0"),
    ("verlet step traced", lambda h: snn.VerletBlock(3, 4, step=h, key=K), (-0.1,), "step"),
    ("reversible depth 0",
     lambda: snn.Reversible(lambda k: snn.revnet_block(4, key=k), 0, key=K), (), "depth >= 1"),
    ("reversible memory",
     lambda: snn.Reversible(lambda k: snn.revnet_block(4, key=k), 3, "recompute", key=K), (),
     "memory"),
    ("hnn dim 0", lambda: snn.HamiltonianNet(0, key=K), (), "dim >= 1"),
    ("hnn complex dtype", lambda: snn.HamiltonianNet(2, dtype=jnp.complex64, key=K), (),
     "real floating-point dtype"),
    ("ode dt <= 0", lambda: snn.ODEBlock(lambda t, y, a: y, diffrax.Euler(), 4, 0.0), (),
     "dt > 0"),
    ("ode dt inf", lambda: snn.ODEBlock(lambda t, y, a: y, diffrax.Euler(), 4, float("inf")),
     (), "dt > 0"),
    ("ode num_steps 0", lambda: snn.ODEBlock(lambda t, y, a: y, diffrax.Euler(), 0, 0.1), (),
     "num_steps >= 1"),
    # shapes of one example
    ("coupling shape", lambda x: snn.AffineCoupling(6, 8, key=K)(x), (jnp.ones(5),),
     "shape \\(6,\\)"),
    ("spectral shape", lambda x: snn.SpectralNormLinear(4, 3, key=K)(x), (jnp.ones(3),),
     "shape \\(4,\\)"),
    ("sympnet not a pair", lambda x: snn.GSympNet(3, key=K)(x), (V6,), "tuple `\\(q, p\\)`"),
    ("sympnet q shape", lambda q, p: snn.GSympNet(3, key=K)((q, p)), (jnp.ones(2), jnp.ones(3)),
     "`q` of shape \\(3,\\)"),
    ("groupsort multiple", lambda x: snn.GroupSort(2)(x), (jnp.ones(5),), "multiple of 2"),
    ("orthogonal conv shape", lambda x: snn.OrthogonalConv2d(2, 3, 4, key=K)(x),
     (jnp.ones((2, 5, 5)),), "shape \\(2, 4, 4\\)"),
    # dtypes: the mathematics is real
    ("orthogonal int x", lambda x: _orth()(x), (jnp.ones(4, jnp.int32),), "real floating"),
    ("orthogonal complex x", lambda x: _orth()(x), (jnp.ones(4, jnp.complex128),), "complex"),
    ("aol int x", lambda x: snn.AOLLinear(4, 3, key=K)(x), (jnp.ones(4, jnp.int32),),
     "AOLLinear.*real floating"),
    ("coupling int x", lambda x: snn.AffineCoupling(4, 8, key=K)(x), (jnp.ones(4, jnp.int32),),
     "AffineCoupling.*`x`"),
    ("coupling complex y", lambda y: snn.AdditiveCoupling(4, 8, key=K).inverse(y),
     (jnp.ones(4, jnp.complex128),), "AdditiveCoupling.inverse.*`y`"),
    ("sympnet int p", lambda q, p: snn.GSympNet(3, key=K)((q, p)),
     (jnp.ones(3), jnp.ones(3, jnp.int32)), "GradientModule.*`p`"),
    ("verlet complex q", lambda q, p: snn.VerletBlock(3, 4, key=K)((q, p)),
     (jnp.ones(3, jnp.complex128), jnp.ones(3)), "VerletBlock.*`q`"),
    ("hnn int q", lambda q, p: snn.HamiltonianNet(3, 8, key=K).hamiltonian(q, p),
     (jnp.ones(3, jnp.int32), jnp.ones(3)), "HamiltonianNet.*`q`"),
    ("iresnet int x", lambda x: snn.InvertibleResidual(4, 8, 0.5, key=K)(x),
     (jnp.ones(4, jnp.int32),), "InvertibleResidual.*`x`"),
    ("orthogonal conv int", lambda x: snn.OrthogonalConv2d(2, 3, 4, key=K)(x),
     (jnp.ones((2, 4, 4), jnp.int32),), "OrthogonalConv2d.*real floating"),
    ("groupsort complex", lambda x: snn.GroupSort(2)(x), (jnp.ones(4, jnp.complex128),),
     "sorts real numbers"),
    ("ode int y", lambda y: snn.ODEBlock(lambda t, y, a: -y, diffrax.Euler(), 2, 0.1)(y),
     (jnp.ones(3, jnp.int32),), "ODEBlock.*`y`"),
    # certificates: their configuration and what they compare
    ("inversion_error sizes", lambda x: check.inversion_error(lambda x: x, lambda y: y[:2], x),
     (V4,), "has 2 entries"),
    ("log_det_error not square", lambda x: check.log_det_error(lambda x: x[:2], jnp.sum, x),
     (V4,), "to as many"),
    ("lipschitz num_starts 0", lambda x: check.lipschitz_lower_bound(jnp.sin, x, K,
                                                                     num_starts=0),
     (V4,), "num_starts an int >= 1"),
    ("lipschitz learning_rate nan", lambda x: check.lipschitz_lower_bound(
        jnp.sin, x, K, learning_rate=float("nan")), (V4,), "learning_rate a finite"),
    # values checked when the layer runs (a runtime error under jit)
    ("iresnet inverse of non-finite y", _iresnet_inverse, (jnp.array([1.0, jnp.nan, 0, 0]),),
     "fixed-point solve .* did not converge"),
]  # fmt: skip


@pytest.mark.parametrize("fn, args, match", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refused_eagerly_and_under_jit(fn, args, match):
    # structjax's own messages, not jaxtyping's (whose annotation checks, on in the test
    # suite, would see a wrong dtype or shape first)
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        assert_refused(fn, *args, match=match)
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


def test_refusals_cover_every_raises_in_the_docstrings():
    # The documented refusals (Raises sections, argument ranges) each have a row above.
    ids = " ".join(r[0] for r in REFUSALS)
    for word in ("bjorck_iterations", "spectral c", "iresnet c", "log_det_tol", "verlet step",
                 "ode dt", "int x", "complex x", "non-finite y"):  # fmt: skip
        assert word in ids


def test_checks_false_skips_the_convergence_test():
    block = snn.InvertibleResidual(4, 8, coefficient=0.5, checks=False, key=K)
    x = jax.jit(lambda y: block.inverse(y))(jnp.array([1.0, jnp.nan, 0, 0]))
    assert not bool(jnp.all(jnp.isfinite(x)))  # no error: the caller opted out


def test_a_valid_layer_built_inside_jit_from_python_numbers_works():
    @jax.jit
    def f(x):
        layer = snn.OrthogonalLinear(4, 4, parametrization="bjorck", bjorck_iterations=0, key=K)
        return layer(x)

    assert f(V4).shape == (4,)


# --- 16-bit parameters and inputs -----------------------------------------------------------


def _cast(tree, dtype):
    return jtu.tree_map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree)


def _coupling(key):
    k1, k2 = jax.random.split(key)
    return snn.Chain(
        [snn.AffineCoupling(6, 16, key=k1), snn.AdditiveCoupling(6, 16, flip=True, key=k2)]
    )


SIXTEEN = [
    ("OrthogonalLinear(stiefel)", lambda k: snn.OrthogonalLinear(6, 9, key=k)),
    ("OrthogonalLinear(cayley)", lambda k: snn.OrthogonalLinear(6, 4, parametrization="cayley",
                                                                 key=k)),
    ("OrthogonalLinear(expm)", lambda k: snn.OrthogonalLinear(6, 9, parametrization="expm",
                                                               key=k)),
    ("OrthogonalLinear(bjorck)", lambda k: snn.OrthogonalLinear(6, 4, parametrization="bjorck",
                                                                 key=k)),
    ("SpectralNormLinear", lambda k: snn.SpectralNormLinear(6, 4, 0.5, key=k)),
    ("couplings", _coupling),
    ("InvertibleResidual", lambda k: snn.InvertibleResidual(6, 8, 0.5, key=k)),
]  # fmt: skip


CASES16 = [(n, m, jnp.bfloat16) for n, m in SIXTEEN] + [
    (n, m, jnp.float16) for n, m in SIXTEEN if n in ("OrthogonalLinear(cayley)", "couplings")
]


@eqx.filter_jit
def _sixteen_bit_run(layer, x):
    """(y, the float32 reference on the same rounded parameters and input, the inversion
    error or 0): one compiled call."""
    y = layer(x)
    y32 = _cast(layer, jnp.float32)(x.astype(jnp.float32))
    inv = 0.0
    if isinstance(layer, snn.AbstractBijection):
        inv = check.inversion_error(layer.forward, layer.inverse, x)
    return y, y32, inv


@pytest.mark.parametrize("make, dtype", [c[1:] for c in CASES16],
                         ids=[f"{c[0]}-{jnp.dtype(c[2]).name}" for c in CASES16])  # fmt: skip
def test_16bit_forward_is_finite_close_to_float32_and_keeps_structure(make, dtype):
    eps = float(jnp.finfo(dtype).eps)
    layer = _cast(make(jax.random.PRNGKey(1)), dtype)
    x = jax.random.normal(jax.random.PRNGKey(2), (6,)).astype(dtype)
    y, y32, inv = _sixteen_bit_run(layer, x)
    assert y.dtype == dtype and bool(jnp.all(jnp.isfinite(y)))
    # only the output's rounding differs from float32 arithmetic
    scale = float(jnp.max(jnp.abs(y32)))
    assert float(jnp.max(jnp.abs(y.astype(jnp.float32) - y32))) <= 4 * eps * scale
    assert float(inv) <= 16 * eps  # bijections invert to the dtype's precision
    if isinstance(layer, snn.OrthogonalLinear):
        w = np.asarray(layer.matrix, np.float32)
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        err = float(np.max(np.abs(gram - np.eye(gram.shape[0]))))
        assert err <= point_tolerance(dtype, w.size)


def test_16bit_dtype_argument_builds_layers():
    dtype = jnp.bfloat16
    for p in ("stiefel", "cayley"):
        layer = snn.OrthogonalLinear(5, 3, parametrization=p, dtype=dtype, key=K)
        w = np.asarray(layer.matrix, np.float32)
        assert layer.matrix.dtype == dtype
        assert np.abs(w @ w.T - np.eye(3)).max() <= point_tolerance(dtype, w.size)
    conv = snn.OrthogonalConv2d(2, 3, 5, dtype=dtype, key=K)
    x = jax.random.normal(K, (2, 5, 5)).astype(dtype)
    y = eqx.filter_jit(lambda c, x: c(x))(conv, x)
    assert y.dtype == dtype
    norms = [float(jnp.linalg.norm(a.astype(jnp.float32))) for a in (y, x)]
    assert abs(norms[0] / norms[1] - 1) <= 8 * float(jnp.finfo(dtype).eps)  # an isometry
    net = snn.GSympNet(2, 2, 4, dtype=dtype, key=K)
    assert all(a.dtype == dtype for a in jtu.tree_leaves(eqx.filter(net, eqx.is_array)))
