"""Every documented refusal of `structjax.equivariant`, eagerly and inside `jax.jit` (one
table); groups never alias their caller's arrays; 16-bit parameters and inputs work and stay
equivariant to their dtype's precision."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import jaxtyping
import numpy as np
import pytest

import structjax.check as check
import structjax.equivariant as se

from ..helpers import assert_refused

K = jax.random.PRNGKey(0)
G3 = se.O(3)
R45 = jnp.array([[1.0, -1.0], [1.0, 1.0]]) / np.sqrt(2)  # in SO(2), not in C4 or D4
FLIP = jnp.array([[-1.0, 0.0], [0.0, 1.0]])  # in D4, not in C4
E2 = jnp.eye(3)


def _group(a):
    return se.Group(np.zeros((0, 2, 2)), a[None]).d


_MAKERS = {
    "linear": lambda: se.EquivariantLinear(se.V(G3), se.V(G3), key=K),
    "emlp": lambda: se.EMLP(se.V(G3), se.Scalar(G3), 8, 1, key=K),
    "gconv": lambda: se.GroupConv(se.C(4), 2, 2, 3, key=K),
    "lifting": lambda: se.LiftingConv(se.D(4), 2, 2, 3, key=K),
    "steerable": lambda: se.SteerableConv(
        se.FieldType(se.SO(2), [0]), se.FieldType(se.SO(2), [0, 1]), 3, key=K
    ),
    "norm": lambda: se.NormNonlinearity(se.FieldType(se.SO(2), [1]), key=K),
    "egnn layer edges": lambda: se.EGNNLayer(3, 8, spatial_dim=2, edge_attr_size=1, key=K),
    "egnn": lambda: se.EGNN(3, 8, 1, 1, spatial_dim=2, key=K),
}


@functools.cache
def built(name):
    """A layer of the table, built once in one compiled call (an eager build compiles a
    random kernel per parameter shape: seconds of test time)."""
    return eqx.filter_jit(_MAKERS[name])()


def _regular_c4():
    return se.FieldType(se.C(4), ["regular", 1])


# (id, fn, args, match): `fn(*args)` is refused eagerly and under `jax.jit` (args traced).
REFUSALS = [
    # group constructors: integer orders and dimensions
    ("C(2.5)", lambda: se.C(2.5), (), "`C\\(2.5\\)` needs n as an integer"),
    ("C(0)", lambda: se.C(0), (), "`C\\(0\\)` needs n >= 1"),
    ("C(True)", lambda: se.C(True), (), "bool"),
    ("D(2.5)", lambda: se.D(2.5), (), "`D\\(2.5\\)` needs n as an integer"),
    ("D(0)", lambda: se.D(0), (), "n >= 1"),
    ("S(1)", lambda: se.S(1), (), "`S\\(1\\)` needs n >= 2"),
    ("S(2.5)", lambda: se.S(2.5), (), "n as an integer"),
    ("SO(1)", lambda: se.SO(1), (), "`SO\\(1\\)` needs n >= 2"),
    ("SO(2.5)", lambda: se.SO(2.5), (), "n as an integer"),
    ("O(0)", lambda: se.O(0), (), "`O\\(0\\)` needs n >= 1"),
    ("O(1.5)", lambda: se.O(1.5), (), "n as an integer"),
    ("Sp(0)", lambda: se.Sp(0), (), "`Sp\\(0\\)` needs n >= 1"),
    ("Sp(1.5)", lambda: se.Sp(1.5), (), "n as an integer"),
    ("E(0)", lambda: se.E(0), (), "`E\\(0\\)` needs n >= 1"),
    ("E(1.5)", lambda: se.E(1.5), (), "n as an integer"),
    ("C(n) traced", lambda n: se.C(n), (2.5,), "`C\\(.*\\)` needs n"),
    ("Group order float",
     lambda: se.Group(np.zeros((0, 2, 2)), np.eye(2)[None], order=2.5), (), "order as an integer"),
    ("Group order 0", lambda: se.Group(np.zeros((0, 2, 2)), np.eye(2)[None], order=0), (),
     "order >= 1"),
    ("Group no generators", lambda: se.Group(np.zeros((0, 2, 2)), np.zeros((0, 2, 2))), (),
     "no generators"),
    ("Group shape", lambda: se.Group(np.zeros((1, 2, 3)), np.zeros((0, 2, 2))), (),
     "shape \\(k, d, d\\)"),
    ("Group spaces", lambda: se.Group(np.zeros((1, 2, 2)), np.eye(3)[None]), (),
     "act on different spaces"),
    ("Group complex", lambda: se.Group(np.zeros((0, 2, 2)), 1j * np.eye(2)[None]), (),
     "real `discrete_generators`"),
    ("Group non-finite or traced", _group, (jnp.full((2, 2), jnp.nan),),
     "`discrete_generators`"),
    # representations, bases, layers
    ("T(1.5, 0)", lambda: se.T(1.5, 0, G3), (), "p as an integer"),
    ("T(-1, 0)", lambda: se.T(-1, 0, G3), (), "p >= 0"),
    ("-1 * V", lambda: -1 * se.V(G3), (), "multiplicity >= 0"),
    ("uniform_rep(0)", lambda: se.uniform_rep(0, G3), (), "channels >= 1"),
    ("uniform_rep max_rank", lambda: se.uniform_rep(8, G3, max_rank=-1), (), "max_rank >= 0"),
    ("basis different groups", lambda: se.equivariant_basis(se.V(G3), se.V(se.SO(3))), (),
     "different groups"),
    ("basis krylov too large", lambda: se.equivariant_basis(3 * se.Scalar(se.SO(2)),
                                                            3 * se.Scalar(se.SO(2)), "krylov"),
     (), "more than n/5"),
    ("basis method", lambda: se.equivariant_basis(se.V(G3), se.V(G3), "svd"), (),
     "'auto', 'dense' or 'krylov'"),
    ("linear different groups",
     lambda: se.EquivariantLinear(se.V(G3), se.V(se.SO(3)), key=K), (), "representation of"),
    ("linear identically zero", lambda: se.EquivariantLinear(se.Scalar(G3), se.V(G3), key=K),
     (), "identically zero"),
    ("linear int dtype", lambda: se.EquivariantLinear(se.V(G3), se.V(G3), dtype=jnp.int32,
                                                      key=K), (), "real floating-point dtype"),
    ("EMLP all-scalar hidden, vector out",
     lambda: se.EMLP(se.V(G3), se.V(G3), hidden=8 * se.Scalar(G3), key=K), (),
     "identically zero .*carry no direction"),
    ("EMLP num_layers 0", lambda: se.EMLP(se.V(G3), se.Scalar(G3), 16, 0, key=K), (),
     "num_layers >= 1"),
    ("EMLP hidden", lambda: se.EMLP(se.V(G3), se.Scalar(G3), "wide", key=K), (),
     "representation or an int"),
    ("linear int x", lambda x: built("linear")(x),
     (jnp.ones(3, jnp.int32),), "EquivariantLinear.*real floating-point `x`"),
    ("EMLP complex x", lambda x: built("emlp")(x),
     (jnp.ones(3, jnp.complex128),), "EMLP.*complex"),
    ("EMLP shape", lambda x: built("emlp")(x), (jnp.ones(4),),
     "size \\(3,\\)"),
    ("act int x", lambda g, x: se.V(G3).act(g, x), (jnp.eye(3), jnp.ones(3, jnp.int32)),
     "rep.act.*real floating"),
    # group convolutions: g in C4 / D4, sizes, dtypes
    ("rotate_image g not in D4", se.rotate_image, (R45, jnp.ones((5, 5))),
     "`rotate_image\\(g, x\\)` needs `g` to be an element of D4"),
    ("rotate_group_features g not in C4", se.rotate_group_features,
     (FLIP, jnp.ones((4, 5, 5))), "needs `g` to be an element of C4"),
    ("rotate_image g shape", se.rotate_image, (jnp.eye(3), jnp.ones((5, 5))), "shape \\(2, 2\\)"),
    ("rotate_image not square", se.rotate_image, (FLIP, jnp.ones((5, 4))), "square images"),
    ("gconv even kernel", lambda: se.GroupConv(se.C(4), 2, 2, 4, key=K), (), "odd kernel_size"),
    ("gconv channels 0", lambda: se.LiftingConv(se.C(4), 0, 2, 3, key=K), (),
     "positive channels"),
    ("gconv channels float", lambda: se.LiftingConv(se.C(4), 2.5, 2, 3, key=K), (),
     "in_channels as an integer"),
    ("gconv group", lambda: se.GroupConv(se.C(8), 2, 2, 3, key=K), (), "C4 and D4"),
    ("gconv group name", lambda: se.GroupConv("p6", 2, 2, 3, key=K), (), "unknown group name"),
    ("gconv int x", lambda x: built("gconv")(x),
     (jnp.ones((2, 4, 5, 5), jnp.int32),), "GroupConv.*real floating"),
    ("lifting complex x", lambda x: built("lifting")(x),
     (jnp.ones((2, 5, 5), jnp.complex128),), "LiftingConv.*complex"),
    ("pool reduction", lambda: se.GroupPool("median"), (), "'max' or 'mean'"),
    # steerable fields and layers
    ("field spec", lambda: se.FieldType(se.C(3), [0, 1.5]), (), "unknown field type 1.5"),
    ("field regular SO(2)", lambda: se.FieldType(se.SO(2), ["regular"]), (),
     "need a finite group"),
    ("field act g not in C4", lambda g, x: _regular_c4().act(g, x), (R45, jnp.ones((6, 5, 5))),
     "FieldType.act.*element of C\\(4\\)"),
    ("field act reflection in SO(2)",
     lambda g, x: se.FieldType(se.SO(2), [1]).act(g, x), (FLIP, jnp.ones((2, 5, 5))),
     "element of SO\\(2\\) \\(no reflections\\)"),
    ("field representation g not orthogonal",
     lambda g: se.FieldType(se.O(2), [1]).representation(g), (2 * FLIP,), "element of O\\(2\\)"),
    ("field act int x", lambda g, x: se.FieldType(se.SO(2), [0]).act(g, x),
     (jnp.eye(2), jnp.ones((1, 5, 5), jnp.int32)), "FieldType.act.*real floating"),
    ("steerable even kernel",
     lambda: se.SteerableConv(se.FieldType(se.SO(2), [0]), se.FieldType(se.SO(2), [1]), 4,
                              key=K), (), "odd kernel_size"),
    ("steerable sigma nan",
     lambda: se.steerable_kernel_basis(se.SO(2), 0, 1, 5, rings=(0.0, 1.0),
                                       sigma=(0.5, float("nan"))), (), "finite widths > 0"),
    ("steerable int x",
     lambda x: built("steerable")(x), (jnp.ones((1, 5, 5), jnp.int32),),
     "SteerableConv.*real floating"),
    ("norm nonlinearity int x",
     lambda x: built("norm")(x),
     (jnp.ones((2, 5, 5), jnp.int32),), "NormNonlinearity.*real floating"),
    ("pointwise on vectors", lambda: se.PointwiseNonlinearity(se.FieldType(se.SO(2), [1])), (),
     "not trivial or regular"),
    # E(n) graphs
    ("egnn hidden 0", lambda: se.EGNNLayer(3, 0, key=K), (), "hidden_size=0"),
    ("egnn h int", lambda h, x: built("egnn layer edges")(h, x),
     (jnp.ones((4, 3), jnp.int32), jnp.ones((4, 2))), "EGNNLayer.*real floating-point `h`"),
    ("egnn x complex", lambda h, x: built("egnn")(h, x),
     (jnp.ones((4, 3)), jnp.ones((4, 2), jnp.complex128)), "EGNN.*complex"),
    ("egnn edge_attr int",
     lambda h, x, m, e: built("egnn layer edges")(h, x, m, e),
     (jnp.ones((4, 3)), jnp.ones((4, 2)), jnp.ones(4, bool), jnp.ones((4, 4, 1), jnp.int32)),
     "`edge_attr`"),
    ("egnn mask int", lambda h, x, m: built("egnn layer edges")(h, x, m),
     (jnp.ones((4, 3)), jnp.ones((4, 2)), jnp.ones(4, jnp.int32)), "boolean mask"),
    ("euclidean action g not in E(2)", lambda g, x: se.euclidean_action(g, (None, x))[1],
     (2 * E2, jnp.ones((4, 2))), "needs `g` in E\\(2\\)"),
    ("group sample int dtype", lambda: G3.sample(K, jnp.int32), (), "real floating-point"),
    ("reps of different groups", lambda: se.V(G3) + se.V(se.O(2)), (), "different groups"),
    ("field type not planar", lambda: se.FieldType(G3, [0]), (), "subgroup of O\\(2\\)"),
    ("field type empty", lambda: se.FieldType(se.SO(2), []), (), "non-empty"),
    ("steerable basis regular", lambda: se.steerable_kernel_basis(se.C(4), "regular", 0, 3), (),
     "takes irreps"),
    ("steerable needs field types", lambda: se.SteerableConv(1, 2, 3, key=K), (),
     "two `FieldType`s"),
    ("steerable different groups",
     lambda: se.SteerableConv(se.FieldType(se.SO(2), [0]), se.FieldType(se.O(2), [0]), 3,
                              key=K), (), "different groups"),
    ("gated needs a field type", lambda: se.GatedFieldNonlinearity(3), (), "needs a `FieldType`"),
    ("pool needs a field type", lambda: se.InvariantPool("x"), (), "needs a `FieldType`"),
    ("egnn residual", lambda: se.EGNNLayer(3, 8, 4, residual=True, key=K), (),
     "out_feature_size == feature_size"),
    ("egnn edge_attr_size < 0", lambda: se.EGNNLayer(3, 8, edge_attr_size=-1, key=K), (),
     "edge_attr_size=-1"),
    ("egnn h shape", lambda h, x: built("egnn layer edges")(h, x),
     (jnp.ones((4, 5)), jnp.ones((4, 2))), "h of shape \\(N, 3\\)"),
    ("egnn edge_attr missing", lambda h, x: built("egnn layer edges")(h, x),
     (jnp.ones((4, 3)), jnp.ones((4, 2))), "needs edge_attr of shape \\(4, 4, 1\\)"),
    ("equivariance_error num_samples 0",
     lambda x: check.equivariance_error(lambda x: x, G3, x, K, rep_in=se.V(G3), rep_out=se.V(G3),
                                        num_samples=0), (jnp.ones(3),), "num_samples"),
    ("euclidean action g shape", lambda g, x: se.euclidean_action(g, (None, x))[1],
     (jnp.eye(4), jnp.ones((4, 2))), "shape \\(3, 3\\)"),
]  # fmt: skip


@pytest.mark.parametrize("fn, args, match", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_refused_eagerly_and_under_jit(fn, args, match):
    jaxtyping.config.update("jaxtyping_disable", True)  # structjax's messages, not jaxtyping's
    try:
        assert_refused(fn, *args, match=match)
    finally:
        jaxtyping.config.update("jaxtyping_disable", False)


def test_every_group_constructor_refuses_non_integer_and_non_positive_orders():
    ids = {r[0] for r in REFUSALS}
    for ctor, smallest in (("C", 1), ("D", 1), ("S", 2), ("SO", 2), ("O", 1), ("Sp", 1),
                           ("E", 1)):  # fmt: skip
        assert {f"{ctor}(1.5)", f"{ctor}(2.5)"} & ids, ctor
        assert f"{ctor}({smallest - 1})" in ids, ctor


def test_members_pass_the_membership_checks():
    # the checks refuse only non-members: every element of D4 (eagerly), and elements of E(2),
    # O(2), C(4) (in one compiled call)
    for g in se.group_elements("p4m"):
        se.rotate_image(g.astype(jnp.float64), jnp.ones((3, 3)))
    se.rotate_group_features(se.group_elements("p4")[1].astype(jnp.float64), jnp.ones((4, 3, 3)))

    @jax.jit
    def members(theta):
        c, s = jnp.cos(theta), jnp.sin(theta)
        rot = jnp.stack([jnp.stack([c, -s]), jnp.stack([s, c])])
        g = jnp.eye(3).at[:2, :2].set(rot).at[:2, 2].set(jnp.array([0.3, -2.0]))
        quarter = se.group_elements("p4")[3].astype(jnp.float64)
        return (
            se.euclidean_action(g, (None, jnp.ones((4, 2))))[1],
            se.FieldType(se.O(2), [1, "sign"]).representation(rot @ FLIP),
            se.FieldType(se.C(4), ["regular", 1]).representation(quarter),
        )

    jax.block_until_ready(members(0.7))
    # and `checks=False` opts out (the nearest element is used)
    se.rotate_image(R45, jnp.ones((3, 3)), checks=False)


def test_groups_copy_their_generators_and_leave_the_caller_array_alone():
    gens = np.stack([np.array([[0.0, -1.0], [1.0, 0.0]])])
    group = se.Group(np.zeros((0, 2, 2)), gens, order=4)
    assert gens.flags.writeable  # not made read-only
    gens[0] = np.eye(2)  # a later write by the caller does not change the group
    assert np.array_equal(group.discrete_generators[0], [[0.0, -1.0], [1.0, 0.0]])
    assert not group.discrete_generators.flags.writeable  # the group's own copy is frozen


def test_emlp_all_scalar_hidden_is_fine_for_an_invariant_output():
    # the refusal is only for outputs the hidden features cannot reach: scalars -> scalar is
    # reachable (and the pairwise products feed it the inner products)
    model = se.EMLP(se.V(G3), se.Scalar(G3), hidden=2 * se.Scalar(G3), num_layers=1, key=K)
    ys = eqx.filter_jit(lambda m, x: jax.vmap(m)(x))(model, jax.random.normal(K, (4, 3)))
    assert float(jnp.std(ys)) > 1e-4


# --- 16-bit parameters and inputs -----------------------------------------------------------


def _cast(tree, dtype):
    return jtu.tree_map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree)


@eqx.filter_jit
def _sixteen_bit_equivariance(f, r_in, r_out, x, g):
    """(f(x), f in float32 on the same rounded parameters, f(g x), g f(x)): g x is rounded to
    x's dtype, the rest compared in float32."""
    y = f(x)
    y32 = _cast(f, jnp.float32)(x.astype(jnp.float32))
    lhs = f(r_in.act(g, x.astype(jnp.float32)).astype(x.dtype)).astype(jnp.float32)
    return y, y32, lhs, r_out.act(g, y.astype(jnp.float32))


@pytest.mark.parametrize("dtype", [jnp.bfloat16])
def test_16bit_equivariant_linear_and_emlp(dtype):
    eps = float(jnp.finfo(dtype).eps)
    rep_in, rep_out = se.V(G3) + se.T(2, 0, G3), se.Scalar(G3) + se.V(G3)
    layer = se.EquivariantLinear(rep_in, rep_out, dtype=dtype, key=K)
    model = se.EMLP(se.V(G3), se.Scalar(G3), 16, 1, dtype=dtype, key=K)
    x = jax.random.normal(jax.random.PRNGKey(1), (rep_in.size,)).astype(dtype)
    g = G3.sample(jax.random.PRNGKey(2), jnp.float32)
    for f, r_in, r_out, xi in ((layer, rep_in, rep_out, x), (model, se.V(G3), se.Scalar(G3),
                                                              x[:3])):  # fmt: skip
        y, y32, lhs, rhs = _sixteen_bit_equivariance(f, r_in, r_out, xi, g)
        assert y.dtype == dtype and bool(jnp.all(jnp.isfinite(y)))
        scale = float(jnp.max(jnp.abs(y32)))
        assert float(jnp.max(jnp.abs(y.astype(jnp.float32) - y32))) <= 4 * eps * scale
        # equivariant to the dtype's precision
        assert float(jnp.max(jnp.abs(lhs - rhs))) <= 16 * eps * max(scale, 1e-2)


@pytest.mark.parametrize("dtype", [jnp.float16])
def test_16bit_group_convolutions_stay_equivariant(dtype):
    eps = float(jnp.finfo(dtype).eps)
    lift = se.LiftingConv(se.D(4), 2, 3, 3, dtype=dtype, key=K)
    conv = se.GroupConv(se.D(4), 3, 2, 3, dtype=dtype, key=jax.random.PRNGKey(1))
    x = jax.random.normal(jax.random.PRNGKey(2), (2, 7, 7)).astype(dtype)

    @jax.jit
    def run(lift, conv, x):
        def net(lift, conv, x):
            return conv(jax.nn.relu(lift(x)))

        y = net(lift, conv, x)
        y32 = net(_cast(lift, jnp.float32), _cast(conv, jnp.float32), x.astype(jnp.float32))
        gs = se.group_elements("p4m")[jnp.array([1, 4])].astype(x.dtype)  # generators R, S
        lhs = jax.vmap(lambda g: net(lift, conv, se.rotate_image(g, x)))(gs)
        rhs = jax.vmap(lambda g: se.rotate_group_features(g, y))(gs)
        return y, y32, lhs.astype(jnp.float32), rhs.astype(jnp.float32)

    y, y32, lhs, rhs = run(lift, conv, x)
    assert y.dtype == dtype and bool(jnp.all(jnp.isfinite(y)))
    scale = float(jnp.max(jnp.abs(y32)))
    assert float(jnp.max(jnp.abs(y.astype(jnp.float32) - y32))) <= 8 * eps * scale
    assert float(jnp.max(jnp.abs(lhs - rhs))) <= 8 * eps * scale  # so for all of D4
