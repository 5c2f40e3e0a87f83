"""Deep stacks of exactly invertible blocks with constant-memory backpropagation."""

import functools
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._guards import positive_finite, static_float, static_int
from .._reversible import reversible_loop
from ._bijection import AbstractBijection, check_vector, jit_method, zero_log_det
from ._sympnet import _check_state, _dtype, _normal, gradient_shear

_MEMORY = ("reversible", "stored")
LogDet = Float[Array, ""]


def _scan_forward(vjp_arg):
    blocks, x = vjp_arg
    dynamic, static = eqx.partition(blocks, eqx.is_array)

    def body(carry, block):
        x, total = carry
        y, ld = eqx.combine(block, static).forward_and_log_det(x)
        return (y, total + ld), None

    (y, total), _ = jax.lax.scan(body, (x, zero_log_det(x)), dynamic)
    return y, total


def _block_step(static, params, block, n, state):
    x, total = state
    y, ld = eqx.combine(block, static).forward_and_log_det(x)
    return y, total + ld


def _block_inverse(static, params, block, n, state):
    y, total = state
    x, ld = eqx.combine(block, static).inverse_and_log_det(y)
    return x, total + ld  # (the inverse's log-det is minus the block's)


def _reversible_scan(vjp_arg):
    """`_scan_forward` under the reversible adjoint (`structjax._reversible`): only the
    output is kept, each block's input rebuilt by its inverse on the way back (Gomez et al.
    2017, Algorithm 1), so memory does not grow with depth; a batching rule runs the backward
    pass once over a `vmap`ped batch."""
    blocks, x = vjp_arg
    dynamic, static = eqx.partition(blocks, eqx.is_array)
    depth = jtu.tree_leaves(dynamic)[0].shape[0]
    out = reversible_loop(
        functools.partial(_block_step, static),
        functools.partial(_block_inverse, static),
        None,
        dynamic,
        (x, zero_log_det(x)),
        length=depth,
        chunk=depth,
    )
    return jtu.tree_map(lambda a: a[0], out)


class Reversible(AbstractBijection):
    """`depth` blocks of one kind, stacked (parameters along a leading axis) and run as one
    `lax.scan`; itself a bijection whose log-determinant is the sum of the blocks'.

    With `memory="reversible"` (default), backpropagation stores no activations: a
    `custom_vjp` rebuilds each block's input from its output by the block's exact inverse
    (Gomez, Ren, Urtasun & Grosse 2017, "The reversible residual network", Sec. 3), so memory
    is flat in depth and the gradient equals plain autodiff up to the rounding of the inverse.
    `memory="stored"` is plain autodiff through the scan. Feed a batch with `jax.vmap` as
    usual: a batching rule runs the backward pass once over the whole batch, so the
    parameters' cotangents are summed over examples block by block rather than held per
    example. (The reversible gradient is first-order only: `jax.hessian` of it is not
    defined.)

    **Arguments:**

    - `make_block`: `key -> block`, any `AbstractBijection` with an exact inverse
        (`revnet_block`, `VerletBlock`, `AffineCoupling`, SympNet modules, ...).
    - `depth`: the number of blocks.
    - `memory`: `"reversible"` or `"stored"`.
    - `key`: a PRNG key, split over the blocks.

    **Raises:** `ValueError` for an unknown `memory` or `depth < 1`; `TypeError` for a
    non-integer `depth`.

    `__call__` (= `forward`) takes ONE example of the blocks' input structure; batch with
    `jax.vmap`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> make = lambda k: snn.revnet_block(4, width=8, key=k)
    >>> stack = snn.Reversible(make, depth=3, key=jax.random.key(0))
    >>> x = jnp.linspace(-1.0, 1.0, 4)
    >>> print(bool(sc.inversion_error(stack.forward, stack.inverse, x) < 1e-13))
    True

    ```
    """

    blocks: AbstractBijection
    depth: int = eqx.field(static=True)
    memory: str = eqx.field(static=True)

    def __init__(
        self,
        make_block: Callable[[PRNGKeyArray], AbstractBijection],
        depth: int,
        memory: str = "reversible",
        *,
        key: PRNGKeyArray,
    ):
        if memory not in _MEMORY:
            raise ValueError(f"`Reversible(memory={memory!r})` must be one of {_MEMORY}.")
        depth = static_int(depth, f"Reversible(depth={depth!r})", "depth")
        self.blocks = eqx.filter_vmap(make_block)(jax.random.split(key, depth))
        self.depth, self.memory = depth, memory

    # (through `jit_method`: an eager call compiles its scans once per shape, not per call)
    def forward_and_log_det(self, x: PyTree[Array]) -> tuple[PyTree[Array], LogDet]:
        return jit_method(_stack_forward, self, x)

    def inverse_and_log_det(self, y: PyTree[Array]) -> tuple[PyTree[Array], LogDet]:
        return jit_method(_stack_inverse, self, y)


def _stack_forward(stack: Reversible, x):
    if stack.memory == "reversible":
        return _reversible_scan((stack.blocks, x))
    return _scan_forward((stack.blocks, x))


def _stack_inverse(stack: Reversible, y):
    dynamic, static = eqx.partition(stack.blocks, eqx.is_array)

    def body(carry, block):
        y, total = carry
        x, ld = eqx.combine(block, static).inverse_and_log_det(y)
        return (x, total + ld), None

    (x, total), _ = jax.lax.scan(body, (y, zero_log_det(y)), dynamic, reverse=True)
    return x, total


class VerletBlock(AbstractBijection):
    """One Verlet step of the Hamiltonian reversible network of Chang, Meng, Haber,
    Ruthotto, Begert & Holtham 2018 ("Reversible architectures for arbitrarily deep residual
    neural networks", eq. (5); after Haber & Ruthotto 2017, eq. (3.8)), on $y = (q, p)$:

    $q \\mapsto q + h K_1^\\top \\sigma(K_1 p + b_1)$, then
    $p \\mapsto p - h K_2^\\top \\sigma(K_2 q + b_2)$.

    Each half is a symplectic shear (`GradientModule` with $a = \\pm h$), so the block is
    symplectic and volume preserving for any weights, and inverted exactly.

    **Arguments:**

    - `dim`: $d$, the size of $q$ and of $p$; `width`: $w$, with
      $K_i \\in \\mathbb R^{w \\times d}$ (positive ints).
    - `step`: $h > 0$ (a finite Python float).
    - `activation`: $\\sigma$, elementwise (default `tanh`).
    - `dtype`: the parameters' real floating dtype (default: JAX's default float).
    - `key`: a PRNG key for $K_1, K_2$ (the biases start at zero).

    **Raises:** `ValueError` for sizes below 1 or a step that is not finite and positive;
    `TypeError` for non-integer sizes or a non-float `dtype`; at call time
    `ValueError` for a state that is not a tuple `(q, p)` of shape-`(dim,)` vectors,
    `TypeError` for integer or complex ones.

    `__call__` (= `forward`) takes ONE state `(q, p)` and returns one; batch with `jax.vmap`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> block = snn.VerletBlock(2, width=8, step=0.1, key=jax.random.key(0))
    >>> q, p = jnp.array([0.1, -0.2]), jnp.array([0.3, 0.4])
    >>> print(bool(sc.symplecticity_error(lambda q, p: block((q, p)), q, p) < 1e-12))
    True
    >>> print(bool(sc.inversion_error(block.forward, block.inverse, (q, p)) < 1e-14))
    True

    ```
    """

    k1: Float[Array, "width dim"]
    b1: Float[Array, " width"]
    k2: Float[Array, "width dim"]
    b2: Float[Array, " width"]
    activation: Callable
    step: float = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        width: int,
        step: float = 0.1,
        activation: Callable[[Array], Array] = jnp.tanh,
        dtype: DTypeLike | None = None,
        *,
        key: PRNGKeyArray,
    ):
        call = f"VerletBlock(dim={dim!r}, width={width!r}, step={step!r})"
        dim, width = static_int(dim, call, "dim"), static_int(width, call, "width")
        step = static_float(step, call, "step", positive_finite, "a step h > 0 (finite)")
        k1, k2 = jax.random.split(key)
        dtype = _dtype(dtype, call)
        self.k1 = _normal(k1, (width, dim), dtype, 1 / math.sqrt(dim))
        self.k2 = _normal(k2, (width, dim), dtype, 1 / math.sqrt(dim))
        self.b1, self.b2 = jnp.zeros(width, dtype), jnp.zeros(width, dtype)
        self.activation, self.step = activation, step

    def _halves(self):
        one = jnp.ones(self.b1.shape, self.b1.dtype)

        def drift(p):
            return gradient_shear(self.k1, self.step * one, self.b1, self.activation, p)

        def kick(q):
            return gradient_shear(self.k2, self.step * one, self.b2, self.activation, q)

        return drift, kick

    def forward_and_log_det(self, y: PyTree[Array]) -> tuple[PyTree[Array], LogDet]:
        _check_state(y, self.k1.shape[-1], "VerletBlock")
        drift, kick = self._halves()
        q, p = y
        q = q + drift(p)
        return (q, p - kick(q)), zero_log_det(y)

    def inverse_and_log_det(self, y: PyTree[Array]) -> tuple[PyTree[Array], LogDet]:
        _check_state(y, self.k1.shape[-1], "VerletBlock")
        drift, kick = self._halves()
        q, p = y
        p = p + kick(q)
        return (q - drift(p), p), zero_log_det(y)


class HamiltonianResNet(eqx.Module):
    """A classifier whose hidden layers are Verlet steps of a learned Hamiltonian system
    (Haber & Ruthotto 2017; Chang et al. 2018): the input is lifted to $q = W_{in} x$, $p = 0$,
    stepped through `depth` `VerletBlock`s (a `Reversible` stack: constant-memory backprop
    by default), and read out linearly from $(q, p)$.

    **Arguments:** `in_features`, `out_features`, `dim` of $q$ and $p$, `width` of the
    blocks, `depth`, `step` $h$, `memory` (`"reversible"` or `"stored"`), `key`.

    **Raises:** `ValueError`/`TypeError` as `VerletBlock` and `Reversible` for their
    arguments, and for sizes that are not positive ints; at call time `ValueError` for an
    input not of shape `(in_features,)`.

    `__call__` takes ONE example of shape `(in_features,)` and returns the logits, shape
    `(out_features,)`; batch with `jax.vmap`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.nn as snn
    >>> model = snn.HamiltonianResNet(3, 2, dim=4, width=8, depth=2, key=jax.random.key(0))
    >>> logits = jax.vmap(model)(jnp.ones((5, 3)))
    >>> print(logits.shape, bool(jnp.all(jnp.isfinite(logits))))
    (5, 2) True

    ```
    """

    lift: eqx.nn.Linear
    body: Reversible
    head: eqx.nn.Linear
    in_features: int = eqx.field(static=True)

    def __init__(
        self,
        in_features: int,
        out_features: int,
        dim: int = 32,
        width: int = 64,
        depth: int = 16,
        step: float = 0.1,
        memory: str = "reversible",
        *,
        key: PRNGKeyArray,
    ):
        call = f"HamiltonianResNet({in_features!r}, {out_features!r})"
        in_features = static_int(in_features, call, "in_features")
        out_features = static_int(out_features, call, "out_features")
        k_in, k_body, k_out = jax.random.split(key, 3)
        self.lift = eqx.nn.Linear(in_features, dim, key=k_in)
        self.body = Reversible(
            lambda k: VerletBlock(dim, width, step, key=k), depth, memory, key=k_body
        )
        self.head = eqx.nn.Linear(2 * dim, out_features, key=k_out)
        self.in_features = in_features

    def __call__(
        self, x: Float[Array, " in"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, " out"]:
        del key
        check_vector(x, self.in_features, "HamiltonianResNet(...)(x)")
        q = self.lift(x)
        q, p = self.body((q, jnp.zeros_like(q)))
        return self.head(jnp.concatenate([q, p]))
