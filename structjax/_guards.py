"""One way to refuse a value, eagerly and under `jit`/`vmap`/`grad` alike.

Every documented refusal in structjax goes through `guard`: when the condition is known now
(an eager call, a Python number, a concrete array) it raises at once with a message that names
the call, the argument, what was expected and what was found; when it is traced it attaches an
`equinox.error_if` to the value it returns, so the check runs with the program. The caller must
*use* the returned value (that is what keeps the check alive under `jit`).

The dtype policy lives here too: integer, boolean and complex inputs are refused where the
mathematics is real, and 16-bit floats (float16, bfloat16) are computed in float32 and cast
back, the way optax's `mu_dtype` keeps moments.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

T = TypeVar("T")


def is_traced(*xs: Any) -> bool:
    """Whether any leaf of `xs` is a tracer (inside `jit`, `vmap`, `grad`, `scan`...)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jtu.tree_leaves(xs))


def _describe(found: Any) -> str:
    a = np.asarray(found)
    if a.size == 1:
        return repr(a.reshape(()).item())
    return f"max {np.nanmax(a):.3e}" if np.issubdtype(a.dtype, np.number) else repr(a)


def guard(
    x: T,
    bad: Any,
    message: str,
    *,
    found: Any = None,
    exception: type[Exception] = ValueError,
    checks: bool = True,
) -> T:
    """Return `x`, refusing it where `bad` holds (anywhere, for an array `bad`).

    **Arguments:**

    - `x`: the value (any pytree) to return; under a trace the check is attached to it.
    - `bad`: a boolean (Python, NumPy or JAX, any shape): True where the input is refused.
    - `message`: "`call(arg=...)` needs ..." — the call, the argument and what was expected.
    - `found`: an optional value reported eagerly after the message as "found ...".
    - `exception`: the eager exception type (`ValueError`, or `TypeError` for dtypes).
    - `checks`: `False` returns `x` untouched (the opt-out of hot loops, benchmarked).

    **Returns:** `x`, with the check attached when traced.

    **Raises:** `exception` at once when `bad` is concrete and true; under `jit` an
    `equinox` runtime error (a `jax.errors.JaxRuntimeError`) carrying `message`.
    """
    if not checks:
        return x
    if not is_traced(bad):
        if bool(np.any(np.asarray(bad))):
            suffix = "" if found is None or is_traced(found) else f" Found {_describe(found)}."
            raise exception(message + suffix)
        return x
    return eqx.error_if(x, jnp.any(bad), message)


def check_real_floating(x: Any, call: str, name: str) -> None:
    """Refuse (at trace time, a `TypeError`) any leaf of `x` that is not a real float.

    Integers would integrate or step in integer arithmetic; complex numbers would pass
    through real formulas (inner products without conjugation) as if they were real.
    """
    for leaf in jtu.tree_leaves(x):
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            kind = "complex" if jnp.issubdtype(dtype, jnp.complexfloating) else "non-float"
            raise TypeError(
                f"`{call}` needs real floating-point `{name}`, got a {kind} array of dtype "
                f"{dtype}. Cast it first, e.g. `jnp.asarray({name}, jnp.float32)`"
                + (" (the mathematics here is real)." if kind == "complex" else ".")
            )


def compute_dtype(dtype: Any) -> Any:
    """The dtype the geometry runs in: float32 for 16-bit floats, else `dtype` itself."""
    dtype = jnp.dtype(dtype)
    return jnp.dtype(jnp.float32) if dtype.itemsize < 4 else dtype


def in_compute_dtype(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run `fn(self, *arrays)` in float32 when its first array argument is 16-bit, and
    cast floating results back to that dtype (float16/bfloat16 lack the linear algebra
    kernels; float32 keeps their constraint to their own precision)."""

    def wrapper(self, *args, **kwargs):
        leaves = [a for a in jtu.tree_leaves(args) if hasattr(a, "dtype")]
        if not leaves:
            return fn(self, *args, **kwargs)
        dtype = jnp.result_type(leaves[0])
        if not jnp.issubdtype(dtype, jnp.floating) or jnp.dtype(dtype).itemsize >= 4:
            return fn(self, *args, **kwargs)
        up = jtu.tree_map(
            lambda a: a.astype(jnp.float32)
            if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating)
            else a,
            args,
        )
        out = fn(self, *up, **kwargs)
        return jtu.tree_map(
            lambda a: a.astype(dtype)
            if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating)
            else a,
            out,
        )

    wrapper.__name__ = fn.__name__
    wrapper.__qualname__ = fn.__qualname__
    wrapper.__doc__ = fn.__doc__
    wrapper.__wrapped__ = fn  # type: ignore[attr-defined]
    return wrapper


def point_tolerance(dtype: Any, size: int = 1) -> float:
    """How far from its manifold a point of `dtype` may be and still count as on it.

    1e-8 in float64 and 1e-4 in float32 (a few hundred roundings of the constraint), and for
    the 16-bit floats, whose points are stored rounded, 10 eps sqrt(size) with `size` the
    number of entries of one point.
    """
    dtype = jnp.dtype(dtype)
    if dtype.itemsize >= 8:
        return 1e-8
    if dtype.itemsize == 4:
        return 1e-4
    return 10.0 * float(jnp.finfo(dtype).eps) * math.sqrt(max(size, 1))


def hyperparameter(
    value: Any,
    call: str,
    name: str,
    ok: Callable[[Any], Any],
    expected: str,
    *,
    checks: bool = True,
) -> Any:
    """Check a hyperparameter (a number, an array or a tracer, as under
    `optax.inject_hyperparams`) against `ok`; NaN always fails. Returns the value to use."""
    if not checks or callable(value):
        return value
    if is_traced(value):
        v = value
        return guard(value, ~(ok(v) & ~jnp.isnan(v)), f"`{call}` needs {name} {expected}.")
    a = np.asarray(value)
    bad = np.isnan(a) | ~np.asarray(ok(a), bool)
    return guard(value, bad, f"`{call}` needs {name} {expected}, got {name}={value!r}.")


def hyperparameters(
    specs: list[tuple[Any, str, Callable[[Any], Any], str]],
    call: str,
    *,
    checks: bool = True,
) -> list[Any]:
    """`hyperparameter` for several values at once: `specs` is a list of
    `(value, name, ok, expected)`. Concrete values are checked at once, each by name; the
    traced ones (as under `optax.inject_hyperparams`, rebuilt inside every step) share **one**
    run-time check (`equinox.branched_error_if`, whose message names the first bad one), so a
    step pays one conditional, not one per hyperparameter. Returns the values to use, in order.
    """
    out = [value if callable(value) or not checks or is_traced(value)
           else hyperparameter(value, call, name, ok, expected)
           for value, name, ok, expected in specs]  # fmt: skip
    traced = [i for i, (v, *_rest) in enumerate(specs)
              if checks and not callable(v) and is_traced(v)]  # fmt: skip
    if not traced:
        return out
    bad = jnp.stack([jnp.any(~(specs[i][2](out[i]) & ~jnp.isnan(out[i]))) for i in traced])
    messages = tuple(f"`{call}` needs {specs[i][1]} {specs[i][3]}." for i in traced)
    guarded = eqx.branched_error_if(tuple(out[i] for i in traced), jnp.any(bad),
                                    jnp.argmax(bad), messages)  # fmt: skip
    for i, v in zip(traced, guarded):
        out[i] = v
    return out
