"""A flax.linen model whose Dense kernel is Stiefel-constrained, trained with
riemannian_adam (the README shows the same recipe)."""

import jax
import jax.numpy as jnp
import jax.random as jr
import optax
import pytest

import structjax.manifolds as sm
import structjax.optim as so

nn = pytest.importorskip("flax.linen")


class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(4, use_bias=False, name="orthogonal")(x)  # kernel (8, 4): Stiefel(8, 4)
        return nn.Dense(1, name="readout")(jnp.tanh(x))


@jax.numpy_dtype_promotion("standard")  # flax.linen promotes dtypes internally
def test_flax_linen_stiefel_kernel_with_riemannian_adam(getkey):
    model = Net()
    xs = jr.normal(getkey(), (256, 8))
    ys = jnp.sin(xs[:, :1] - 0.5 * xs[:, 3:4])
    params = model.init(getkey(), xs[:1])
    stiefel = sm.Stiefel(8, 4)
    # Start on the manifold, and mark the kernel: a manifolds tree like the params.
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: stiefel.project(x) if "orthogonal" in str(path) else x, params
    )
    manifolds = jax.tree_util.tree_map_with_path(
        lambda path, x: stiefel if "orthogonal" in str(path) else None, params
    )
    opt = so.riemannian_adam(1e-2, manifolds=manifolds)
    state = opt.init(params)

    def loss(params):
        return jnp.mean((model.apply(params, xs) - ys) ** 2)

    @jax.jit
    def step(params, state):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    first = float(loss(params))
    for _ in range(300):
        params, state, value = step(params, state)
    kernel = params["params"]["orthogonal"]["kernel"]
    assert float(value) < 0.3 * first
    assert kernel.dtype == jnp.float32  # flax keeps its float32 params
    assert float(stiefel.constraint_error(kernel)) < 1e-5
