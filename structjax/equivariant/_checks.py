"""Checks shared by the layers of `structjax.equivariant` and `structjax.nn` (which may import
this package): static hyperparameters, parameter dtypes, and 16-bit computation.

Sizes, orders, iteration counts and the like are *static* configuration: they fix shapes and
loop lengths, and live in static fields. They must be concrete Python numbers; a traced value
(a layer built inside `jit` from a traced number) is refused at trace time with a `TypeError`
that says so, rather than failing later in a boolean conversion or a shape. Value ranges are
checked through `structjax._guards.hyperparameter` (NaN always fails).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._guards import hyperparameter, is_traced


def _concrete(value: Any, call: str, name: str, kind: str) -> Any:
    if is_traced(value):
        raise TypeError(
            f"`{call}` needs {name} as a concrete Python {kind} (it is static configuration: it "
            f"fixes shapes or loop lengths), got a traced value. Build the layer outside "
            "`jax.jit`/`jax.vmap`, or close over a Python number."
        )
    if isinstance(value, bool) or isinstance(value, np.bool_):
        raise TypeError(f"`{call}` needs {name} as a Python {kind}, got the bool {value!r}.")
    if (
        isinstance(value, (np.ndarray, np.generic))
        or hasattr(value, "__jax_array__")
        or (hasattr(value, "shape") and hasattr(value, "dtype"))
    ):
        a = np.asarray(value)
        if a.shape != ():
            raise TypeError(f"`{call}` needs {name} as a Python {kind}, got an array of shape "
                            f"{a.shape}.")  # fmt: skip
        value = a.item()
    return value


def static_int(value: Any, call: str, name: str, minimum: int = 1) -> int:
    """`value` as a Python int >= `minimum`, or a clear refusal (a float such as 2.5, a bool,
    a traced value: `TypeError`; out of range: `ValueError`)."""
    value = _concrete(value, call, name, "int")
    if not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{call}` needs {name} as an integer >= {minimum}, got {value!r} "
            f"({type(value).__name__})."
        )
    value = int(value)
    hyperparameter(value, call, name, lambda v: v >= minimum, f">= {minimum}")
    return value


def static_float(
    value: Any, call: str, name: str, ok: Callable[[Any], Any], expected: str
) -> float:
    """`value` as a Python float satisfying `ok` (NaN always fails), or a clear refusal."""
    value = _concrete(value, call, name, "float")
    if not isinstance(value, numbers.Real):
        raise TypeError(f"`{call}` needs {name} as a real number, got {value!r}.")
    value = float(value)
    hyperparameter(value, call, name, ok, expected)
    return value


def positive_finite(v):
    return (v > 0) & (v < math.inf)


def check_param_dtype(dtype: Any, call: str) -> None:
    """Refuse (`TypeError`) a parameter `dtype` that is not a real float: the mathematics of
    these layers is real, and integer weights cannot be trained."""
    if dtype is None:
        return
    d = jnp.dtype(dtype)
    if not jnp.issubdtype(d, jnp.floating):
        kind = "complex" if jnp.issubdtype(d, jnp.complexfloating) else "non-float"
        raise TypeError(
            f"`{call}` needs a real floating-point dtype for its parameters, got the {kind} "
            f"dtype {d}. Use e.g. dtype=jnp.float32 (or bfloat16/float16 for mixed precision)."
        )


def is_16bit(dtype: Any) -> bool:
    d = jnp.dtype(dtype)
    return jnp.issubdtype(d, jnp.floating) and d.itemsize < 4


def _cast(tree: Any, dtype: Any) -> Any:
    return jtu.tree_map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree)


def upcast(tree: Any) -> Any:
    """`tree` with every 16-bit float array in float32 (the dtype their linear algebra runs
    in); other arrays unchanged."""
    return jtu.tree_map(
        lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) and is_16bit(a.dtype) else a,
        tree,
    )


def any_16bit(*trees: Any) -> bool:
    return any(is_16bit(a.dtype) for a in jtu.tree_leaves(trees) if eqx.is_inexact_array(a))


def in_float32(method: Callable) -> Callable:
    """Run `method(self, *args)` on float32 copies of the module and its arguments when any of
    their float arrays is 16-bit, casting the floating outputs back to the dtype of the first
    array argument: float16/bfloat16 lack linear-algebra and FFT kernels, and float32 keeps
    the structure (orthogonality, invertibility, equivariance) to the 16-bit dtype's own
    precision, rounding once at the end (optax's `mu_dtype` idea)."""

    def wrapper(self, *args, **kwargs):
        if not any_16bit(self, args):
            return method(self, *args, **kwargs)
        leaves = [a for a in jtu.tree_leaves(args) if eqx.is_inexact_array(a)]
        out_dtype = leaves[0].dtype if leaves else jnp.float32
        return _cast(method(upcast(self), *upcast(args), **kwargs), out_dtype)

    wrapper.__name__, wrapper.__qualname__ = method.__name__, method.__qualname__
    wrapper.__doc__ = method.__doc__
    wrapper.__wrapped__ = method  # type: ignore[attr-defined]
    return wrapper
