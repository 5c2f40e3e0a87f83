"""ONE reversible adjoint: backpropagation through a loop of exactly invertible steps in
memory constant in the number of steps, for the fixed-step driver (steps in time) and the
reversible networks (blocks in depth) alike.

The forward pass keeps only the final state; the backward pass rebuilds each step's input
from its output by the step's exact inverse and differentiates the step there (Gomez, Ren,
Urtasun & Grosse 2017, "The reversible residual network", Algorithm 1; for ODE solvers,
the reversible adjoint of McCallum & Foster 2024, "Efficient, accurate and stable gradients
for neural ODEs", with an exactly invertible step). The gradient equals plain autodiff up to
the rounding of the inverse.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jaxtyping import PyTree


def _is_none(x) -> bool:
    return x is None


def _chunked(ws, n_chunks: int, chunk: int):
    return jtu.tree_map(lambda w: w.reshape((n_chunks, chunk) + w.shape[1:]), ws)


def _plain_forward(step, params, ws, x0, length: int, chunk: int):
    def one(carry, w):
        x, n = carry
        return (step(params, w, n, x), n + 1), None

    def block(carry, w_chunk):
        carry, _ = jax.lax.scan(one, carry, w_chunk, length=chunk)
        return carry, carry[0]

    n_chunks = length // chunk
    start = (x0, jnp.zeros((), jnp.int32))
    _, xs = jax.lax.scan(block, start, _chunked(ws, n_chunks, chunk), length=n_chunks)
    return xs


def _forward(vjp_arg, step, inverse, inverse_vjp, fused, length, chunk):
    params, ws, x0 = vjp_arg
    if fused is not None:
        return fused(params, ws, x0)
    return _plain_forward(step, params, ws, x0, length, chunk)


_loop = eqx.filter_custom_vjp(_forward)


@_loop.def_fwd
def _loop_fwd(perturbed, vjp_arg, step, inverse, inverse_vjp, fused, length, chunk):
    del perturbed
    xs = _forward(vjp_arg, step, inverse, inverse_vjp, fused, length, chunk)
    # Only the returned states are kept (the final one, or one per chunk): the backward
    # pass rebuilds the rest by inverting steps, starting each chunk from its stored end.
    return xs, xs


@_loop.def_bwd
def _loop_bwd(xs, ct_xs, perturbed, vjp_arg, step, inverse, inverse_vjp, fused, length, chunk):
    del perturbed, fused
    params, ws, x0 = vjp_arg
    n_chunks = length // chunk
    zeros = jtu.tree_map(lambda x: jnp.zeros((n_chunks,) + jnp.shape(x), jnp.result_type(x)), x0)
    ct_xs = jtu.tree_map(lambda c, z: z if c is None else c, ct_xs, zeros, is_leaf=_is_none)
    diff, static = eqx.partition(params, eqx.is_inexact_array)
    back = _backward(step, inverse, inverse_vjp, static, length, chunk)
    ct_diff, ct_ws, ct_x0 = back(diff, ws, xs, ct_xs)
    return ct_diff, ct_ws, ct_x0  # (`None` where `params` holds no floating array)


def _backward(step, inverse, inverse_vjp, static, length: int, chunk: int):
    """The backward pass as a function of arrays only, with a batching rule.

    Each chunk is rebuilt from its stored end state (the state the forward pass returned),
    not from the previous chunk's reconstruction, so rounding in the inverse does not carry
    across saved states.

    Under `jax.vmap` over the state (a batch fed through a layer, an ensemble of initial
    conditions), JAX would batch this pass as it is, giving each example its own copy of
    every parameter cotangent (for a network, batch x depth x parameters). The rule instead
    runs the loop once over the whole batch, each step's vector-Jacobian product summing the
    parameters' cotangent over the batch as it goes: memory batch x state + parameters."""
    n_chunks = length // chunk

    def backward(diff, ws, xs, ct_xs, batched: bool):
        def apply(fn, d, w, n, x):
            p = eqx.combine(d, static)
            if batched:
                return jax.vmap(lambda x_: fn(p, w, n, x_))(x)
            return fn(p, w, n, x)

        def back(carry, w):
            x, ct_x, ct_d, n = carry
            n = n - 1
            if inverse_vjp is not None:
                x_prev, ct_d_n, ct_w, ct_x_prev = inverse_vjp(diff, static, w, n, x, ct_x,
                                                              batched)  # fmt: skip
            else:
                x_prev = apply(inverse, diff, w, n, x)
                _, vjp = eqx.filter_vjp(lambda d, w_, x_: apply(step, d, w_, n, x_), diff, w,
                                        x_prev)  # fmt: skip
                ct_d_n, ct_w, ct_x_prev = vjp(ct_x)
            ct_d = jtu.tree_map(jnp.add, ct_d, ct_d_n)
            return (x_prev, ct_x_prev, ct_d, n), ct_w

        def block(carry, inputs):
            ct_k, w_chunk, x_end = inputs
            _, ct_x, ct_d, n = carry
            x = x_end  # the stored state, where the reconstruction restarts
            ct_x = jtu.tree_map(jnp.add, ct_x, ct_k)
            carry = (x, ct_x, ct_d, n)
            carry, ct_w = jax.lax.scan(back, carry, w_chunk, length=chunk, reverse=True)
            return carry, ct_w

        if batched:  # the chunk axis first, the batch axis second
            ct_xs, xs = jtu.tree_map(lambda c: jnp.moveaxis(c, 0, 1), (ct_xs, xs))
        ct_d0 = jtu.tree_map(jnp.zeros_like, diff)
        x_last = jtu.tree_map(lambda x: x[-1], xs)
        init = (x_last, jtu.tree_map(jnp.zeros_like, x_last), ct_d0,
                jnp.asarray(length, jnp.int32))  # fmt: skip
        (_, ct_x0, ct_diff, _), ct_ws = jax.lax.scan(
            block,
            init,
            (ct_xs, _chunked(ws, n_chunks, chunk), xs),
            length=n_chunks,
            reverse=True,
        )
        ct_ws = jtu.tree_map(lambda c: c.reshape((length,) + c.shape[2:]), ct_ws)
        return ct_diff, ct_ws, ct_x0

    @jax.custom_batching.custom_vmap
    def unbatched(diff, ws, xs, ct_xs):
        return backward(diff, ws, xs, ct_xs, batched=False)

    @unbatched.def_vmap
    def rule(axis_size, in_batched, diff, ws, xs, ct_xs):
        diff_b, ws_b, *rest_b = in_batched
        if any(jtu.tree_leaves((diff_b, ws_b))):  # the parameters are batched too
            axes = jtu.tree_map(lambda b: 0 if b else None, in_batched)
            out = jax.vmap(unbatched, in_axes=tuple(axes), axis_size=axis_size)(diff, ws, xs, ct_xs)
            return out, jtu.tree_map(lambda _: True, out)

        def broadcast(x, b):
            return x if b else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x))

        xs, ct_xs = jtu.tree_map(broadcast, (xs, ct_xs), tuple(rest_b))
        ct_diff, ct_ws, ct_x0 = backward(diff, ws, xs, ct_xs, batched=True)
        out_b = (jtu.tree_map(lambda _: False, ct_diff), jtu.tree_map(lambda _: False, ct_ws),
                 jtu.tree_map(lambda _: True, ct_x0))  # fmt: skip
        return (ct_diff, ct_ws, ct_x0), out_b

    return unbatched


def reversible_loop(
    step: Callable,
    inverse: Callable,
    params: PyTree,
    ws: PyTree,
    x0: PyTree,
    *,
    length: int,
    chunk: int,
    fused: Callable | None = None,
    inverse_vjp: Callable | None = None,
) -> PyTree:
    """`length` steps `x_{n+1} = step(params, ws[n], n, x_n)`, returning the states after
    every `chunk` steps stacked on a leading axis (`length // chunk` of them), differentiated
    by rebuilding the trajectory backwards with `inverse(params, ws[n], n, x_{n+1}) = x_n`.

    - `params`: shared by every step (its floating arrays get the summed cotangent);
    - `ws`: per-step data (arrays with leading axis `length`, e.g. stacked block
        parameters), or `None`; `n` is the step index, an int32 scalar;
    - `fused`: optionally `fused(params, ws, x0) -> states`, a faster forward pass computing
        the same map (the backward pass still steps one at a time);
    - `inverse_vjp`: optionally `inverse_vjp(diff, static, w, n, x_{n+1}, ct_{n+1}, batched)
        -> (x_n, ct_diff, ct_w, ct_n)`, the inverse and the step's vector-Jacobian product
        at once (`params = eqx.combine(diff, static)`; with `batched`, `x` and `ct` carry a
        leading batch axis and `ct_diff` is summed over it), for a step whose inverse
        evaluates the same functions as the step (saves recomputing them).

    Memory is constant in `length`: the returned states, one state being rebuilt and the
    parameters' cotangents. Each chunk is rebuilt from its returned end state.
    """
    return _loop((params, ws, x0), step, inverse, inverse_vjp, fused, length, chunk)
