"""Steerable CNNs on the plane: exact equivariance for rotations by multiples of 90° (and the
reflections of D4), the stated bound for arbitrary SO(2) angles, the kernel basis against the
Weiler-Cesa solution counts, group actions, jit/vmap/grad, float32, and clear errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import structjax.check as check
from structjax.equivariant import (
    SO,
    C,
    D,
    FieldType,
    GatedFieldNonlinearity,
    InvariantPool,
    NormNonlinearity,
    O,
    PointwiseNonlinearity,
    S,
    SteerableConv,
    default_basis_params,
    steerable_kernel_basis,
)
from structjax.equivariant._fields import _decompose
from structjax.equivariant._steerable_basis import _angular_basis

from ..helpers import tree_max_abs_diff

# The bound stated in `SteerableConv`'s docstring for arbitrary SO(2)/O(2) angles (33x33 grid,
# kernel 7, Gaussians of width 2.5 inside a disc); measured 0.8e-2 to 1.3e-2.
ARBITRARY_ANGLE_BOUND = 3e-2


def _normal(shape, seed=0, dtype=np.float64):
    """Test inputs from numpy: no compilation per shape, unlike `jax.random.normal`."""
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


def _error(f, group, x, key, rep_in, rep_out):
    """The certificate, compiled as one program."""
    run = eqx.filter_jit(
        lambda f, x, key: check.equivariance_error(f, group, x, key, rep_in=rep_in, rep_out=rep_out)
    )
    return float(run(f, x, key))


# (name, group of the types, in fields, out fields, the D4-subgroup to test with)
CONVS = [
    ("SO2-irreps", SO(2), [0, 1, 2], [0, 1, 2], C(4)),
    ("O2-irreps", O(2), [0, "sign", 1, 2], [0, 1, "sign", 2], D(4)),
    ("C4-regular", C(4), ["regular", 0, 2, 1], ["regular", 1, 2], C(4)),
    ("C8-regular", C(8), ["regular", 4], ["regular", 3, 0], C(4)),
    ("D4-regular", D(4), ["regular", "sign", (0, 2), (1, 2), 1], ["regular", 1, (1, 2)], D(4)),
]


@pytest.mark.parametrize("name,group,fin,fout,test_group", CONVS, ids=[c[0] for c in CONVS])
def test_conv_exactly_equivariant(name, group, fin, fout, test_group, getkey):
    tin, tout = FieldType(group, fin), FieldType(group, fout)
    conv = SteerableConv(tin, tout, 5, key=getkey())
    if conv.bias is not None:
        conv = eqx.tree_at(lambda c: c.bias, conv, replace_fn=lambda b: b + 0.3)
    # not trivially equivariant: the basis elements are independent (tested below) and every
    # weight is non-zero, so the kernel is too
    assert bool(jnp.all(conv.weights != 0)) and conv.weights.size >= 2 * len(tout.fields)
    x = _normal((tin.size, 9, 9))
    assert _error(conv, test_group, x, getkey(), tin, tout) < 1e-12


def _nonlinearities(getkey):
    o2 = FieldType(O(2), [0, "sign", 1, 2, 2])
    gated = GatedFieldNonlinearity(FieldType(SO(2), [0, 1, 2, 1]))
    d4 = FieldType(D(4), ["regular", 0, "regular"])
    mixed = FieldType(D(4), ["regular", 0, "sign", 1, (1, 2)])
    pool = InvariantPool(mixed)
    return [
        ("norm-O2", NormNonlinearity(o2, key=getkey()), o2, o2, D(4)),
        ("gated-SO2", gated, gated.in_type, gated.field_type, C(4)),
        ("pointwise-D4", PointwiseNonlinearity(d4), d4, d4, D(4)),
        ("pool-D4", pool, mixed, pool.out_type, D(4)),
    ]


@pytest.mark.parametrize("index", range(4), ids=["norm", "gated", "pointwise", "pool"])
def test_nonlinearities_and_pooling_equivariant(index, getkey):
    _, f, tin, tout, group = _nonlinearities(getkey)[index]
    x = _normal((tin.size, 7, 7), seed=index)
    assert _error(f, group, x, getkey(), tin, tout) < 1e-12


class _Stack(eqx.Module):
    layers: tuple

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


def _stack(group, fin, hidden, key, dtype=None):
    """conv -> gate -> conv -> norm -> pool: invariant scalar maps."""
    k1, k2, k3 = jax.random.split(key, 3)
    tin, th = FieldType(group, fin), FieldType(group, hidden)
    gate = GatedFieldNonlinearity(th)
    conv1 = SteerableConv(tin, gate.in_type, 5, dtype=dtype, key=k1)
    conv2 = SteerableConv(th, th, 3, dtype=dtype, key=k2)
    norm = NormNonlinearity(th, dtype=dtype, key=k3)
    pool = InvariantPool(th)
    return _Stack((conv1, gate, conv2, norm, pool)), tin, pool.out_type


@pytest.mark.parametrize(
    "group,fin,hidden,test_group",
    [(SO(2), [0], [0, 1, 2, 1], C(4)), (D(4), [0, "sign"], ["regular", 1, "sign", 0], D(4))],
    ids=["SO2", "D4"],
)
def test_small_stack_exactly_invariant(group, fin, hidden, test_group, getkey):
    model, tin, tout = _stack(group, fin, hidden, getkey())
    x = _normal((tin.size, 11, 11))
    assert _error(model, test_group, x, getkey(), tin, tout) < 1e-12


def _smooth_field(channels, seed=0, n=33, bumps=6, width=2.5, radius=9.0):
    """A sum of Gaussians of width `width` centred inside a disc, tapered to zero outside it."""
    rng = np.random.default_rng(seed)
    c = (n - 1) / 2
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    px, py = j - c, c - i
    centres = rng.uniform(-radius / 2**0.5, radius / 2**0.5, (bumps, 2))
    amps = rng.standard_normal((channels, bumps))
    d2 = (px - centres[:, 0, None, None]) ** 2 + (py - centres[:, 1, None, None]) ** 2
    x = np.einsum("cb,bhw->chw", amps, np.exp(-d2 / (2 * width**2)))
    return jnp.asarray(x / (1 + np.exp(np.hypot(px, py) - radius - 3)))


@pytest.mark.parametrize(
    "group,fields", [(SO(2), [0, 1, 2]), (O(2), [0, "sign", 1, 2])], ids=["SO2", "O2"]
)
def test_arbitrary_angles_within_the_stated_bound(group, fields, getkey):
    ftype = FieldType(group, fields)
    conv = SteerableConv(ftype, ftype, 7, key=getkey())
    x = _smooth_field(ftype.size)
    err = _error(conv, group, x, getkey(), ftype, ftype)
    assert 1e-4 < err < ARBITRARY_ANGLE_BOUND  # not exact (the grid is resampled), but close


# ---------------------------------------------------------------- the kernel basis

# Weiler & Cesa 2019, App. F: solutions per ring (all frequencies allowed) between irreps.
SO2_COUNTS = {(0, 0): 1, (0, 1): 2, (1, 0): 2, (1, 1): 4, (1, 2): 4, (2, 1): 4, (2, 3): 4}
O2_COUNTS = {
    ("trivial", "trivial"): 1,
    ("sign", "sign"): 1,
    ("trivial", "sign"): 0,
    ("sign", "trivial"): 0,
    ("trivial", 2): 1,
    ("sign", 1): 1,
    (1, "trivial"): 1,
    (2, "sign"): 1,
    (1, 1): 2,
    (1, 3): 2,
    (3, 1): 2,
}


@pytest.mark.parametrize(
    "group,counts", [(SO(2), SO2_COUNTS), (O(2), O2_COUNTS)], ids=["SO2", "O2"]
)
def test_basis_counts_match_weiler_cesa(group, counts):
    for (a, b), count in counts.items():
        basis = steerable_kernel_basis(group, a, b, 7, rings=(2.0,), max_frequencies=(8,))
        assert basis.shape[0] == count, (a, b)
        if count:  # unit norm, linearly independent
            flat = basis.reshape(count, -1)
            assert np.allclose(np.linalg.norm(flat, axis=1), 1.0)
            assert np.linalg.matrix_rank(flat, tol=1e-8) == count


def _irreps(ftype):
    """The irreps of the group of `ftype` (frequencies up to 2 for SO(2), O(2))."""
    n, flips = ftype.n, ftype.flips
    top = n // 2 if n else 2
    ones = [(j, k) for k in (0, n // 2 if n and n % 2 == 0 else 0) for j in (0, 1)]
    ones = sorted(set(ones)) if flips else sorted({k for _, k in ones})
    return ones + [(1, k) if flips else k for k in range(1, top + 1) if 2 * k != n]


def _elements(ftype, count=40):
    """Every element of C_N / D_N, or `count` rotations (and reflections) of SO(2) / O(2): enough
    for the Haar average of the trigonometric polynomials below."""
    n = ftype.n or count
    rots = [
        np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        for t in np.arange(n) * 2 * np.pi / n
    ]
    refl = [r @ np.diag([-1.0, 1.0]) for r in rots] if ftype.flips else []
    return np.stack(rots + refl)


def _angle(g, phi):
    """The angle of $g (\\cos\\phi, \\sin\\phi)$."""
    c, s = np.cos(phi), np.sin(phi)
    return np.arctan2(g[1, 0] * c + g[1, 1] * s, g[0, 0] * c + g[0, 1] * s)


def _trig_space(phi, cutoff, db, da):
    """The functions $\\cos f\\phi\\, E_{ij}$, $\\sin f\\phi\\, E_{ij}$, $f \\le$ cutoff,
    sampled at `phi`: `(dim, db, da, len(phi))`."""
    fs = np.arange(cutoff + 1)[:, None]
    trig = np.concatenate([np.cos(fs * phi), np.sin(fs[1:] * phi)])
    units = np.eye(db * da).reshape(db * da, db, da)
    return np.einsum("fp,eij->feijp", trig, units).reshape(-1, db, da, phi.size)


@pytest.mark.parametrize("group", [SO(2), O(2), C(4), D(4), C(6), D(3)], ids=lambda g: g.name)
def test_angular_basis_solves_the_constraint_and_spans_it(group):
    """Every analytic element satisfies $k(g\\phi) = \\psi_{out}(g) k(\\phi)
    \\psi_{in}(g)^{-1}$, and they span the equivariant subspace of the functions of angular
    frequency <= cutoff, whose dimension is computed independently (the rank of the group
    average on that space)."""
    cutoff, phi = 5, np.linspace(0, 2 * np.pi, 64, endpoint=False) + 0.1
    ft = FieldType(group, [0])
    elements = _elements(ft)
    for a in _irreps(ft):
        for b in _irreps(ft):
            ta, tb = FieldType(group, [a]), FieldType(group, [b])
            ia, ib = ta.fields[0][1:], tb.fields[0][1:]
            freqs, basis = _angular_basis(ft.n, ft.flips, ft.beta, ia, ib, cutoff, phi)
            avg = 0.0
            space = _trig_space(phi, cutoff, ib[2], ia[2])
            rhos_a = np.asarray(jax.vmap(ta.representation)(jnp.asarray(elements)))
            rhos_b = np.asarray(jax.vmap(tb.representation)(jnp.asarray(elements)))
            for g, ra, rb in zip(elements, rhos_a, rhos_b):
                _, moved = _angular_basis(ft.n, ft.flips, ft.beta, ia, ib, cutoff, _angle(g, phi))
                expect = np.einsum("ij,bjkp,lk->bilp", rb, basis, ra)
                assert np.max(np.abs(moved - expect), initial=0.0) < 1e-12, (a, b)
                # (g . k)(phi) = rho_b(g) k(g^{-1} phi) rho_a(g)^{-1}, on every k of the space
                back = _trig_space(_angle(g.T, phi), cutoff, ib[2], ia[2])
                avg = avg + np.einsum("ij,bjkp,lk->bilp", rb, back, ra).reshape(len(space), -1)
            dim = np.linalg.matrix_rank(avg / len(elements), tol=1e-8)
            assert basis.shape[0] == dim, (a, b, basis.shape[0], dim)
            if dim:
                assert np.linalg.matrix_rank(basis.reshape(dim, -1), tol=1e-8) == dim
            assert np.all(np.abs(freqs) <= cutoff)


def test_field_types():
    assert FieldType(SO(2), {0: 2, 1: 1}) == FieldType(SO(2), [0, "trivial", 1])
    assert FieldType(C(8), ["regular", 4, 1]).size == 8 + 1 + 2
    assert FieldType(D(4), ["regular", (1, 2), 1]).slices == ((0, 8), (8, 9), (9, 11))


def test_default_basis_params_follow_escnn():
    assert default_basis_params(7) == ((0.0, 1.0, 2.0, 3.0), (0.005, 0.6, 0.6, 0.4), (0, 2, 3, 2))
    assert default_basis_params(5) == ((0.0, 1.0, 2.0), (0.005, 0.6, 0.4), (0, 2, 2))
    # every pair of SO(2) irreps gets a non-zero basis with the default band limit
    for a in range(3):
        for b in range(3):
            assert steerable_kernel_basis(SO(2), a, b, 5).shape[0] > 0


# ---------------------------------------------------------------- actions


def _o2_elements(count, seed=0):
    rng = np.random.default_rng(seed)
    rots = [
        np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        for t in rng.uniform(0, 7, count)
    ]
    return np.stack([r @ np.diag([1.0, -1.0]) if i % 2 else r for i, r in enumerate(rots)])


def test_actions_are_group_actions():
    d4 = FieldType(D(4), ["regular", 0, "sign", (0, 2), (1, 2), 1])
    x = _normal((d4.size, 6, 6))
    act = jax.jit(d4.act)
    elements = _elements(d4)  # all of D4: act(g, act(h, x)) = act(gh, x), exactly
    acted = {i: act(h, x) for i, h in enumerate(elements)}
    for g in elements:
        for i, h in enumerate(elements):
            assert tree_max_abs_diff(act(g, acted[i]), act(g @ h, x)) < 1e-12
    assert tree_max_abs_diff(act(np.eye(2), x), x) == 0
    # the fibre representations are homomorphisms of O(2), at arbitrary angles
    o2 = FieldType(O(2), [0, "sign", 1, 2, 5])
    gs, hs = _o2_elements(8, seed=1), _o2_elements(8, seed=2)
    rho = jax.vmap(o2.representation)
    assert tree_max_abs_diff(rho(gs @ hs), rho(gs) @ rho(hs)) < 1e-12
    assert tree_max_abs_diff(jax.vmap(FieldType(O(2), [1]).representation)(gs), gs) < 1e-12
    # the conventions: R(+90°) is jnp.rot90, diag(-1, 1) a left-right flip (as `rotate_image`)
    img = x[:1]
    scalar = jax.jit(FieldType(D(4), [0]).act)
    r90, mirror = np.array([[0.0, -1.0], [1.0, 0.0]]), np.diag([-1.0, 1.0])
    assert tree_max_abs_diff(scalar(r90, img), jnp.rot90(img, axes=(-2, -1))) == 0
    assert tree_max_abs_diff(scalar(mirror, img), img[..., ::-1]) == 0


@pytest.mark.parametrize("group", [C(4), C(5), D(4), D(3)], ids=lambda g: g.name)
def test_regular_representation_decomposes_into_irreps(group):
    ftype = FieldType(group, ["regular"])
    irreps, q = _decompose(ftype.fields[0], ftype.n, ftype.flips, ftype.beta)
    assert np.allclose(q.T @ q, np.eye(q.shape[0]), atol=1e-12)
    parts = FieldType(group, [irrep[:2] if ftype.flips else irrep[1] for irrep in irreps])
    gs = jnp.asarray(_elements(ftype))
    lhs = np.asarray(jax.vmap(ftype.representation)(gs))
    rhs = q @ np.asarray(jax.vmap(parts.representation)(gs)) @ q.T
    assert np.allclose(lhs, rhs, atol=1e-12)
    assert np.all(np.sort(lhs, axis=-1)[..., -1] == 1.0)  # permutations
    assert np.all(np.sum(lhs, axis=-1) == 1.0)


# ---------------------------------------------------------------- transformations, dtypes


def test_jit_vmap_grad_no_retrace(getkey):
    ftype = FieldType(SO(2), [0, 1])
    gate = GatedFieldNonlinearity(FieldType(SO(2), [0, 1, 2]))
    conv = SteerableConv(ftype, gate.in_type, 3, key=getkey())
    norm = NormNonlinearity(gate.field_type, key=getkey())
    model = _Stack((conv, gate, norm, InvariantPool(gate.field_type)))
    xs = _normal((3, ftype.size, 7, 7))
    xs = xs.at[0, :, 3, 3].set(0.0)  # a zero norm inside: the gradient stays finite

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def value_and_grad(model, xs):
        def loss(model):
            ys = jax.vmap(model)(xs)
            return jnp.sum(ys**2), ys

        return eqx.filter_value_and_grad(loss, has_aux=True)(model)

    (_, ys), grads = value_and_grad(model, xs)
    value_and_grad(model, xs + 1.0)  # same shapes: no retrace
    single = eqx.filter_jit(model)(xs[1])
    assert tree_max_abs_diff(ys[1], single) < 1e-12
    leaves = jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_inexact_array))
    assert len(leaves) == 3 and all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)


def test_float32_equivariance(getkey):
    model, tin, tout = _stack(D(4), [0, "sign"], ["regular", 1, "sign"], getkey(), jnp.float32)
    x = _normal((tin.size, 9, 9), dtype=np.float32)
    assert _error(model, D(4), x, getkey(), tin, tout) < 1e-5


# ---------------------------------------------------------------- errors


def test_bad_input_raises_clear_errors(getkey):
    so2 = FieldType(SO(2), [0, 1])
    conv = SteerableConv(so2, so2, 3, key=getkey())
    with pytest.raises(ValueError, match="takes one field of shape \\(3, H, W\\)"):
        conv(jnp.zeros((2, 5, 5)))
    with pytest.raises(ValueError, match="odd kernel_size"):
        SteerableConv(so2, so2, 4, key=getkey())
    with pytest.raises(ValueError, match="unknown field type 'vector'"):
        FieldType(SO(2), [0, "vector"])
    with pytest.raises(ValueError, match="'regular' fields need a finite group"):
        FieldType(SO(2), ["regular"])
    with pytest.raises(ValueError, match="not an irrep"):
        FieldType(C(4), [3])
    with pytest.raises(ValueError, match="unknown field type 'sign'"):
        FieldType(SO(2), ["sign"])
    with pytest.raises(ValueError, match="ambiguous"):
        FieldType(D(4), [2])
    with pytest.raises(ValueError, match="subgroup of O\\(2\\)"):
        FieldType(S(3), [0])
    with pytest.raises(ValueError, match="different groups"):
        SteerableConv(so2, FieldType(C(4), [0]), 3, key=getkey())
    with pytest.raises(ValueError, match="not trivial or regular"):
        PointwiseNonlinearity(so2)
    with pytest.raises(ValueError, match="takes one field of shape"):
        NormNonlinearity(so2, key=getkey())(jnp.zeros((4, 5, 5)))
    with pytest.raises(ValueError, match="square field"):
        so2.act(jnp.eye(2), jnp.zeros((3, 5, 6)))
