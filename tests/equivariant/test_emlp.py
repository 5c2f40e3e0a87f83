"""Groups, representations, the equivariant basis, EquivariantLinear and EMLP."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import structjax.check as check
import structjax.equivariant as se


@eqx.filter_jit
def _perturb(tree, key, scale):
    """Noise on every parameter, in one compiled call (eager draws compile once per shape)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    keys = jax.random.split(key, len(leaves))
    noisy = [a + scale * jax.random.normal(k, a.shape, a.dtype) for a, k in zip(leaves, keys)]
    return jax.tree_util.tree_unflatten(treedef, noisy)


GROUPS = [
    se.C(4), se.D(4), se.S(4), se.SO(2), se.O(2), se.SO(3), se.O(3), se.SO(4), se.O(5),
    se.Lorentz(), se.Sp(2), se.E(2),
]  # fmt: skip
IDS = [g.name for g in GROUPS]


def _invariant_form(group):
    """The bilinear form each group preserves, g^T M g = M (None: none to check)."""
    n = group.name
    if n == "O(1,3)":  # the Lorentz group
        return np.diag([1.0, -1.0, -1.0, -1.0])
    if n.startswith(("SO", "O(", "C(", "D(", "S(")):
        return np.eye(group.d)
    if n.startswith("Sp"):
        k = group.d // 2
        return np.block([[np.zeros((k, k)), np.eye(k)], [-np.eye(k), np.zeros((k, k))]])
    return None


@pytest.mark.parametrize("group", GROUPS, ids=IDS)
def test_samples_are_group_elements(group, getkey):
    form = _invariant_form(group)
    for g in jax.jit(jax.vmap(group.sample))(jax.random.split(getkey(), 4)):
        assert g.shape == (group.d, group.d)
        if form is not None:
            assert np.allclose(g.T @ form @ g, form, atol=1e-9 * float(jnp.abs(g).max()) ** 2)
    e = group.identity()
    g, h = group.sample(getkey()), group.sample(getkey())
    assert np.allclose(group.compose(g, group.inverse(g)), e, atol=1e-9)
    assert np.allclose(group.compose(e, h), h)


def test_finite_groups_sample_every_element(getkey):
    for group, order in [(se.C(4), 4), (se.D(4), 8), (se.S(3), 6)]:
        samples = jax.jit(jax.vmap(group.sample))(jax.random.split(getkey(), 200))
        seen = {tuple(np.round(np.asarray(g), 6).ravel()) for g in samples}
        assert len(seen) == order == group.order


@pytest.mark.parametrize("group", GROUPS, ids=IDS)
def test_representations_are_homomorphisms(group, getkey):
    v = se.V(group)
    for rep in [v, v.dual, v * v, v * v.dual + 2 * se.Scalar(group), se.T(2, 1, group)]:
        g, h = group.sample(getkey()), group.sample(getkey())
        gh = rep.rho(group.compose(g, h))
        scale = float(jnp.abs(gh).max())
        assert np.allclose(gh, rep.rho(g) @ rep.rho(h), atol=1e-10 * scale)
        x = jax.random.normal(getkey(), (rep.size,))
        assert np.allclose(rep.act(g, x), rep.rho(g) @ x, atol=1e-10 * scale)


# The number of O(n)-equivariant maps T_p -> T_q is the number of perfect matchings of p + q
# indices, (p + q - 1)!!, when p + q is even and n is large enough (Brauer; Finzi et al. 2021,
# Table 1); invariant maps of S(n) on 2-tensors: the Bell number B(4) = 15 for n >= 4.
def _double_factorial(k):
    return math.prod(range(k, 0, -2)) if k > 0 else 1


@pytest.mark.parametrize("p, q", [(0, 0), (1, 1), (2, 0), (1, 2), (2, 2), (3, 1), (2, 1)])
def test_orthogonal_basis_counts(p, q):
    group = se.O(4)
    r = se.equivariant_basis(se.T(p, 0, group), se.T(q, 0, group)).shape[-1]
    assert r == (_double_factorial(p + q - 1) if (p + q) % 2 == 0 else 0)


def test_known_counts():
    eb = se.equivariant_basis
    for n in (2, 3, 4, 5):
        s = se.S(n)
        assert eb(se.V(s), se.V(s)).shape[-1] == 2  # identity and all-ones
        # partitions of 4 indices into at most n blocks: 8, 14, 15, 15
        assert eb(se.T(2, 0, s), se.T(2, 0, s)).shape[-1] == {2: 8, 3: 14}.get(n, 15)
    so3, o3 = se.SO(3), se.O(3)
    assert eb(se.T(2, 0, so3), se.V(so3)).shape[-1] == 1  # the cross product (Levi-Civita)
    assert eb(se.T(2, 0, o3), se.V(o3)).shape[-1] == 0  # ... which a reflection forbids
    lor = se.Lorentz()
    assert eb(se.V(lor) * se.V(lor), se.Scalar(lor)).shape[-1] == 1  # the Minkowski metric
    assert eb(se.V(lor), se.V(lor).dual).shape[-1] == 1  # eta maps V to V*
    assert eb(se.V(se.C(4)), se.V(se.C(4))).shape[-1] == 2  # a + b J commute with C4
    assert eb(se.V(se.SO(2)), se.V(se.SO(2))).shape[-1] == 2


@pytest.mark.parametrize("group", [se.O(3), se.Lorentz(), se.S(4)], ids=lambda g: g.name)
def test_basis_solves_the_constraint_and_krylov_agrees_with_dense(group, getkey):
    rep_in, rep_out = se.T(2, 0, group), se.T(2, 0, group)
    dense = se.equivariant_basis(rep_in, rep_out, "dense")
    krylov = se.equivariant_basis(rep_in, rep_out, "krylov")
    assert dense.shape == krylov.shape and dense.shape[-1] > 0
    qd, qk = dense.reshape(-1, dense.shape[-1]), krylov.reshape(-1, krylov.shape[-1])
    assert np.allclose(qd.T @ qd, np.eye(qd.shape[1]), atol=1e-12)  # orthonormal
    assert np.allclose(qd @ qd.T, qk @ qk.T, atol=1e-9)  # the same subspace
    for _ in range(3):
        g = np.asarray(group.sample(getkey()))
        for k in range(dense.shape[-1]):
            w = dense[..., k]
            lhs, rhs = np.asarray(rep_out.rho(g)) @ w, w @ np.asarray(rep_in.rho(g))
            assert np.abs(lhs - rhs).max() < 1e-12 * max(1.0, np.abs(lhs).max())


def test_basis_is_cached_per_pair():
    rep = se.T(2, 0, se.O(3))
    assert se.equivariant_basis(rep, rep) is se.equivariant_basis(rep, se.T(2, 0, se.O(3)))


@pytest.mark.parametrize("group", GROUPS[:-1], ids=IDS[:-1])
def test_equivariant_linear_is_equivariant(group, getkey):
    # scalars, vectors, covectors and 2-tensors, with multiplicities, in and out
    rep_in = 2 * se.V(group) + se.Scalar(group) + se.T(2, 0, group)
    rep_out = se.T(2, 0, group) + se.V(group).dual + 2 * se.Scalar(group)
    layer = se.EquivariantLinear(rep_in, rep_out, key=getkey())
    layer = _perturb(layer, getkey(), 1.0)
    x = jax.random.normal(getkey(), (rep_in.size,))
    err = check.equivariance_error(layer, group, x, getkey(), rep_in=rep_in, rep_out=rep_out)
    assert float(err) < 1e-12
    w = layer.matrix()
    assert float(jnp.abs(w).max()) > 1e-2  # a non-trivial map


@pytest.mark.parametrize("group", [se.O(5), se.Lorentz()], ids=lambda g: g.name)
def test_emlp_is_equivariant(group, getkey):
    rep_in, rep_out = 2 * se.V(group), se.Scalar(group) + se.V(group)
    model = se.EMLP(rep_in, rep_out, hidden=40, num_layers=2, key=getkey())
    model = _perturb(model, getkey(), 0.3)
    x = jax.random.normal(getkey(), (rep_in.size,))
    err = check.equivariance_error(model, group, x, getkey(), rep_in=rep_in, rep_out=rep_out)
    assert float(err) < 1e-12
    # not constant: an EMLP without its bilinear part would give every input the same
    # invariant output (no linear map takes O(n)-vectors to scalars)
    jac = eqx.filter_jit(jax.jacrev(model))(x)
    assert float(jnp.abs(jac[0]).max()) > 1e-3  # the invariant output moves with x
    assert float(jnp.abs(jac[1:]).max()) > 1e-3  # and so does the covariant one


def test_jit_vmap_grad_no_retrace_and_float32(getkey):
    group = se.O(3)
    rep_in, rep_out = 2 * se.V(group), se.Scalar(group) + se.V(group)
    model = se.EMLP(rep_in, rep_out, hidden=16, num_layers=1, key=getkey())
    xs = jax.random.normal(getkey(), (5, rep_in.size))

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def batched(m, xs):
        return jax.vmap(m)(xs)

    out = batched(model, xs)
    batched(model, xs + 1.0)
    assert np.allclose(out[2], model(xs[2]), atol=1e-13)
    grads = eqx.filter_grad(lambda m: jnp.sum(jnp.sin(batched(m, xs))))(model)
    leaves = [g for g in jax.tree_util.tree_leaves(grads) if g is not None]
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert max(float(jnp.abs(g).max()) for g in leaves) > 0
    m32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), model)
    x32 = xs[0].astype(jnp.float32)
    assert m32(x32).dtype == jnp.float32
    err = check.equivariance_error(m32, group, x32, getkey(), rep_in=rep_in, rep_out=rep_out)
    assert float(err) < 1e-5


def test_clear_errors(getkey):
    group = se.O(3)
    layer = se.EquivariantLinear(se.V(group), se.V(group), key=getkey())
    with pytest.raises(ValueError, match="size \\(3,\\)"):
        layer(jnp.ones(4))
    with pytest.raises(ValueError, match="no generators"):
        se.Group(np.zeros((0, 2, 2)), np.zeros((0, 2, 2)), "trivial")
    with pytest.raises(ValueError, match="different groups"):
        se.equivariant_basis(se.V(se.O(3)), se.V(se.SO(3)))
    with pytest.raises(ValueError, match="different groups"):
        se.V(se.O(3)) + se.V(se.O(2))
    with pytest.raises(ValueError, match="shape \\(k, d, d\\)"):
        se.Group(np.zeros((2, 3)), np.zeros((0, 3, 3)), "bad")
    with pytest.raises(ValueError, match="n >= 2"):
        se.SO(1)


def test_pairwise_products_reach_the_bilinear_invariants(getkey):
    # O(3): from two vectors the products give their inner products (invariant) and the
    # cross product (for SO(3)); a linear layer after them sees both.
    group = se.SO(3)
    rep = 2 * se.V(group)
    products = se.PairwiseProducts(rep)
    assert products.out_rep.size == 6 + 3 * 9
    x = jax.random.normal(getkey(), (6,))
    err = check.equivariance_error(
        products, group, x, getkey(), rep_in=rep, rep_out=products.out_rep
    )
    assert float(err) < 1e-13
    layer = se.EquivariantLinear(products.out_rep, se.Scalar(group) + se.V(group), key=getkey())
    assert se.equivariant_basis(se.T(2, 0, group), se.Scalar(group)).shape[-1] == 1
    assert se.equivariant_basis(se.T(2, 0, group), se.V(group)).shape[-1] == 1
    y = layer(products(x))
    assert float(jnp.abs(jax.jacrev(lambda x: layer(products(x)))(x)).max()) > 1e-3
    assert y.shape == (4,)
