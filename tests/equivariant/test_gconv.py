"""Group convolutions on p4 and p4m: the actions are group actions with the documented
conventions, the layers compute Cohen & Welling's formulas, and they are equivariant.

Inputs come from numpy and the layers share a few shapes: on CPU, every new shape of a
`jax.random` draw or of an eager op is a fresh XLA compilation, which dominates this file."""

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from structjax import check
from structjax.equivariant import (
    SO,
    C,
    D,
    GlobalPool,
    GroupConv,
    GroupPool,
    LiftingConv,
    group_elements,
    rotate_group_features,
    rotate_image,
)

from ..helpers import tree_max_abs_diff

GROUPS = {"C4": C(4), "D4": D(4)}
ROT = jnp.array([[0.0, -1.0], [1.0, 0.0]])  # +90 degrees
REF = jnp.array([[-1.0, 0.0], [0.0, 1.0]])  # x -> -x


def _normal(seed, *shape, dtype=np.float64):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


def _invariant(g, y):
    return y


def _error(f, group, x, key, rep_in, rep_out):
    return float(check.equivariance_error(f, group, x, key, rep_in=rep_in, rep_out=rep_out))


def _index(elements, g):
    return next(i for i, a in enumerate(elements) if np.array_equal(a, g))


def _layers(group, key, dtype=None):
    """The shapes every test uses: lift 2 -> 4 channels, group conv 4 -> 3, 3x3 kernels."""
    k1, k2 = jax.random.split(key)
    return (
        LiftingConv(group, 2, 4, 3, dtype=dtype, key=k1),
        GroupConv(group, 4, 3, 3, dtype=dtype, key=k2),
    )


def _network(group, key, reduction="max", dtype=None):
    lift, conv = _layers(group, key, dtype)
    relu = eqx.nn.Lambda(jax.nn.relu)
    return eqx.nn.Sequential([lift, relu, conv, relu, GroupPool(reduction)])


# --- the actions --------------------------------------------------------------------------------


def test_image_action_convention():
    x = _normal(0, 2, 5, 5)
    assert jnp.array_equal(rotate_image(ROT, x), jnp.rot90(x, axes=(-2, -1)))
    assert jnp.array_equal(rotate_image(REF, x), jnp.flip(x, -1))
    # (g . f)(p) = f(g^{-1} p) with p = (j - c, c - i): a delta at p moves to g p.
    i, j, c = 0, 1, 2
    delta = jnp.zeros((5, 5)).at[i, j].set(1.0)
    for g in np.asarray(group_elements("D4")):
        u, v = g @ np.array([j - c, c - i])
        moved = rotate_image(jnp.asarray(g, float), delta)
        assert moved[c - v, u + c] == 1.0 and jnp.sum(moved) == 1.0


@pytest.mark.parametrize("name", GROUPS)
def test_actions_are_group_actions(name):
    elements = np.asarray(group_elements(name))
    order = len(elements)
    els = jnp.asarray(elements, float)
    image, features = _normal(1, 2, 5, 5), _normal(2, 2, order, 5, 5)
    a, b = jnp.repeat(els, order, axis=0), jnp.tile(els, (order, 1, 1))  # every pair
    for act, x in ((rotate_image, image), (rotate_group_features, features)):
        # g traced under vmap
        twice = jax.vmap(lambda a, b: act(a, act(b, x)))(a, b)
        once = jax.vmap(lambda ab: act(ab, x))(a @ b)
        assert jnp.array_equal(twice, once)
        assert jnp.array_equal(act(jnp.eye(2), x), x)
        # jit with a traced g: one trace for every element
        jitted = eqx.filter_jit(eqx.debug.assert_max_traces(act, max_traces=1))
        for g in els:
            assert jnp.array_equal(jitted(g, x), act(g, x))
    # The permutation of the group axis: (g . F)[e] = g . F[index of g^{-1} g_e].
    for g in elements:
        moved = rotate_group_features(jnp.asarray(g, float), features)
        for e in range(order):
            src = _index(elements, g.T @ elements[e])
            expected = rotate_image(jnp.asarray(g, float), features[:, src])
            assert jnp.array_equal(moved[:, e], expected)


def test_actions_reject_non_elements():
    rot45 = jnp.array([[1.0, -1.0], [1.0, 1.0]]) / jnp.sqrt(2.0)
    # a ValueError eagerly (tests/equivariant/test_guards.py: and a runtime error under jit)
    with pytest.raises(ValueError, match="to be an element of D4"):
        rotate_image(rot45, jnp.ones((3, 3)))
    with pytest.raises(ValueError, match="to be an element of C4"):
        rotate_group_features(REF, jnp.ones((1, 4, 3, 3)))
    with pytest.raises(ValueError, match="square images"):
        rotate_image(REF, jnp.ones((3, 4)))
    with pytest.raises(ValueError, match="size 4 \\(C4\\) or 8 \\(D4\\)"):
        rotate_group_features(REF, jnp.ones((1, 5, 3, 3)))


# --- the layers compute Cohen & Welling's eqs. (10) and (11) --------------------------------


def _reference(x, weight, bias, elements, lifting):
    """Eq. (10): sum_q f(p + q) psi(g^{-1} q); eq. (11): sum_{s, q} F(s, p + q) psi(g^{-1} s,
    g^{-1} q); written with the 2x2 matrices and plane coordinates, pixel (i, j) = (j - c, c - i)
    and kernel pixel (a, b) = offset (b - r, r - a)."""
    x, weight, bias = np.asarray(x), np.asarray(weight), np.asarray(bias)
    n, r = x.shape[-1], weight.shape[-1] // 2
    out = np.zeros((weight.shape[0], len(elements), n, n))
    table = [[_index(elements, g.T @ h) for h in elements] for g in elements]  # g^{-1} h
    for e, g in enumerate(elements):
        for i in range(n):
            for j in range(n):
                for qu in range(-r, r + 1):
                    for qv in range(-r, r + 1):
                        row, col = i - qv, j + qu  # the pixel p + q
                        if not (0 <= row < n and 0 <= col < n):
                            continue  # zero padding
                        gu, gv = g.T @ np.array([qu, qv])  # g^{-1} q
                        a, b = r - gv, r + gu
                        if lifting:
                            out[:, e, i, j] += weight[:, :, a, b] @ x[:, row, col]
                            continue
                        for s in range(len(elements)):
                            w = weight[:, :, table[e][s], a, b]
                            out[:, e, i, j] += w @ x[:, s, row, col]
    return out + bias[:, None, None, None]


@pytest.mark.parametrize("name", GROUPS)
def test_layers_match_the_formulas(name, getkey):
    elements = np.asarray(group_elements(name))
    lift, conv = _layers(name, getkey())
    image, features = _normal(3, 2, 5, 5), _normal(4, 4, len(elements), 4, 4)
    ref = _reference(image, lift.weight, lift.bias, elements, lifting=True)
    assert tree_max_abs_diff(lift(image), ref) < 1e-13
    ref = _reference(features, conv.weight, conv.bias, elements, lifting=False)
    assert tree_max_abs_diff(conv(features), ref) < 1e-13


# --- equivariance -------------------------------------------------------------------------------


def _errors(f, elements, x, act_in, acts_out):
    """For each candidate action on the output: max over every element g of
    ||f(g . x) - g . f(x)|| / ||f(x)|| (an eager loop: the ops compile once)."""
    y = f(x)
    moved = [(g, f(act_in(g, x))) for g in elements]
    scale = float(jnp.linalg.norm(y))
    return [
        max(float(jnp.linalg.norm(z - act(g, y))) for g, z in moved) / scale for act in acts_out
    ]


@pytest.mark.parametrize("name", GROUPS)
def test_lifting_and_group_conv_equivariance(name, getkey):
    group = GROUPS[name]
    elements = jnp.asarray(group_elements(group), float)
    lift, conv = _layers(group, getkey())
    assert lift.order == conv.order == group.order and lift.group == group
    image, features = _normal(5, 2, 9, 9), _normal(6, 4, group.order, 9, 9)
    key = getkey()
    assert _error(lift, group, image, key, rotate_image, rotate_group_features) <= 1e-12
    assert _error(conv, group, features, key, rotate_group_features, rotate_group_features) <= 1e-12
    # Every element, and not trivially so: the output is not invariant, and rotating it in
    # space without permuting the group axis is not the right action.
    acts = (rotate_group_features, _invariant, rotate_image)
    right, invariant, spatial = _errors(lift, elements, image, rotate_image, acts)
    assert right <= 1e-12 and invariant > 0.1 and spatial > 0.1
    right, spatial = _errors(conv, elements, features, rotate_group_features, acts[::2])
    assert right <= 1e-12 and spatial > 0.1
    # Even sizes are exact too (stride 1, odd kernel: the grid and the padding map to themselves).
    image, features = image[:, 1:, 1:], features[:, :, 1:, 1:]
    assert _errors(lift, elements, image, rotate_image, acts[:1])[0] <= 1e-12
    assert _errors(conv, elements, features, rotate_group_features, acts[:1])[0] <= 1e-12


@pytest.mark.parametrize("name, reduction", [("C4", "max"), ("D4", "mean")])
def test_network_equivariance_and_invariance(name, reduction, getkey):
    group = GROUPS[name]
    net = _network(group, getkey(), reduction)
    classifier = eqx.nn.Sequential([net, GlobalPool()])
    x = _normal(7, 2, 9, 9)
    # lift -> relu -> group conv -> relu -> group pool is equivariant, so the classifier is
    # invariant: certified on sampled elements, then checked on every element.
    assert _error(net, group, x, getkey(), rotate_image, rotate_image) <= 1e-12
    y = classifier(x)
    for g in group_elements(group):
        assert tree_max_abs_diff(classifier(rotate_image(jnp.asarray(g, float), x)), y) < 1e-13
    # Not trivially invariant: the pooled map moves with the image, and a one-pixel shift (not
    # a symmetry: the boundary differs) or another image changes the invariant features.
    moved = net(rotate_image(ROT, x))
    assert float(jnp.linalg.norm(moved - net(x))) > 0.1 * float(jnp.linalg.norm(moved))
    for other in (jnp.roll(x, 1, axis=-1), _normal(8, 2, 9, 9)):
        assert float(jnp.linalg.norm(classifier(other) - y)) > 1e-3 * float(jnp.linalg.norm(y))


def test_float32(getkey):
    group = D(4)
    net = _network(group, getkey(), dtype=jnp.float32)
    x = _normal(9, 2, 9, 9, dtype=np.float32)
    assert net(x).dtype == jnp.float32
    assert _error(net, group, x, getkey(), rotate_image, rotate_image) <= 1e-5


def test_jit_vmap_grad_no_retrace(getkey):
    net = eqx.nn.Sequential([_network(D(4), getkey()), GlobalPool()])
    xs = _normal(10, 3, 2, 9, 9)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def batched(net, xs):
        return jax.vmap(net)(xs)

    ys = batched(net, xs)
    assert ys.shape == (3, 3)
    assert tree_max_abs_diff(ys, jnp.stack([net(x) for x in xs])) < 1e-13
    batched(net, xs + 1.0)
    batched(jax.tree.map(lambda a: a * 2 if eqx.is_inexact_array(a) else a, net), xs)

    @eqx.filter_jit
    def loss(net, xs):
        return jnp.sum(jax.vmap(net)(xs) ** 2)

    grads = eqx.filter(eqx.filter_grad(loss)(net, xs), eqx.is_inexact_array)
    leaves = jax.tree.leaves(grads)
    assert len(leaves) == 4  # two weights, two biases
    for leaf in leaves:
        assert bool(jnp.all(jnp.isfinite(leaf))) and float(jnp.max(jnp.abs(leaf))) > 0


# --- errors -------------------------------------------------------------------------------------


def test_errors(getkey):
    key = getkey()
    lift, conv = _layers("p4m", key)
    with pytest.raises(ValueError, match=r"LiftingConv\(in_channels=2, ...\)` takes one image"):
        lift(jnp.ones((3, 9, 9)))
    with pytest.raises(ValueError, match="batch with `jax.vmap`"):
        lift(jnp.ones((5, 2, 9, 9)))
    with pytest.raises(ValueError, match=r"shape \(2, H, W\), got \(9, 9\)"):
        lift(jnp.ones((9, 9)))
    with pytest.raises(ValueError, match=r"group of order 8 takes one feature map of shape \(4, 8"):
        conv(jnp.ones((4, 4, 9, 9)))
    with pytest.raises(ValueError, match=r"got \(4, 8, 9\)"):
        conv(jnp.ones((4, 8, 9)))
    for cls in (LiftingConv, GroupConv):
        with pytest.raises(ValueError, match="kernel_size=4\\)` needs an odd kernel_size"):
            cls(C(4), 1, 1, 4, key=key)
        with pytest.raises(ValueError, match="positive channels"):
            cls(C(4), 0, 1, 3, key=key)
        for group in (C(8), C(2), D(2), D(3), SO(2)):
            with pytest.raises(
                ValueError, match=re.escape(f"group={group.name})`") + ".*C4 and D4"
            ):
                cls(group, 1, 1, 3, key=key)
        with pytest.raises(ValueError, match="unknown group name"):
            cls("p6", 1, 1, 3, key=key)
    with pytest.raises(ValueError, match="'max' or 'mean'"):
        GroupPool("sum")
    with pytest.raises(ValueError, match="'max' or 'mean'"):
        GlobalPool("median")
    with pytest.raises(ValueError, match=r"GroupPool` takes one feature map"):
        GroupPool()(jnp.ones((3, 9, 9)))
