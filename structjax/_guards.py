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
import numbers
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
    return any(
        isinstance(leaf, jax.core.Tracer)  # pyright: ignore[reportAttributeAccessIssue]  # public, unstubbed
        for leaf in jtu.tree_leaves(xs)
    )


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
    return attach(x, lambda flag: eqx.error_if(flag, jnp.any(bad), message))


def tie(leaf: Any, flag: Any) -> tuple[Any, bool]:
    """`leaf` times the flag (True, as 1 of the leaf's dtype): the same numbers (x * 1 is exact,
    -0, infinities and NaN included), now depending on the flag; and whether it could be
    (arrays of numbers and booleans, not keys or Python objects)."""
    if not isinstance(leaf, (jax.Array, np.ndarray)):
        return leaf, False
    dtype = leaf.dtype
    if dtype == jnp.bool_:
        return leaf & flag, True
    if jnp.issubdtype(dtype, jnp.complexfloating):  # by parts: (1 + 0j) would turn inf to nan
        one = flag.astype(jnp.finfo(dtype).dtype)
        return jax.lax.complex(leaf.real * one, leaf.imag * one), True
    if jnp.issubdtype(dtype, jnp.number):
        return leaf * flag.astype(dtype), True
    return leaf, False


def attach(x: T, check: Callable[[Any], Any]) -> T:
    """`x` carrying a run-time check made by `check(flag)` (an `equinox.error_if` or
    `branched_error_if` on the boolean scalar `flag`, True).

    The check is attached to the scalar, and every array leaf of `x` multiplied by it (as 1),
    rather than `error_if(x, ...)` itself: equinox routes the value through a `lax.cond`
    whose error branch is a host callback returning the value, and under a sharded `jit` that
    makes XLA all-gather `x` onto every device and return it replicated (measured: an 8-way
    sharded f64[4096] state came back `P()` after one all-gather of the whole array). The
    product keeps every sharding, costs one fused elementwise op, and XLA cannot fold it away
    even where the leaf is a compile-time constant (a select on the flag can be:
    `where(flag, nan, nan)` folds to NaN and drops the check, as a NaN learning-rate schedule
    showed; `optimization_barrier` is expanded away on CPU and drops it too).
    Falls back to the check on `x` itself when no leaf can carry the flag.
    """
    flag = check(jnp.ones((), bool))
    leaves, treedef = jtu.tree_flatten(x)
    tied = [tie(leaf, flag) for leaf in leaves]
    if not any(ok for _, ok in tied):
        return check(x)
    return jtu.tree_unflatten(treedef, [leaf for leaf, _ in tied])


def _not_real_kind(dtype: Any) -> str | None:
    """None for a real floating dtype, else "complex" or "non-float" (for messages)."""
    if jnp.issubdtype(dtype, jnp.floating):
        return None
    return "complex" if jnp.issubdtype(dtype, jnp.complexfloating) else "non-float"


def check_real_floating(x: Any, call: str, name: str) -> None:
    """Refuse (at trace time, a `TypeError`) any leaf of `x` that is not a real float.

    Integers would integrate or step in integer arithmetic; complex numbers would pass
    through real formulas (inner products without conjugation) as if they were real.
    """
    for leaf in jtu.tree_leaves(x):
        dtype = jnp.result_type(leaf)
        kind = _not_real_kind(dtype)
        if kind is not None:
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
            lambda a: (
                a.astype(jnp.float32)
                if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating)
                else a
            ),
            args,
        )
        out = fn(self, *up, **kwargs)
        return jtu.tree_map(
            lambda a: (
                a.astype(dtype)
                if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating)
                else a
            ),
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


def checked_value(
    value: Any,
    ok: Callable[[Any], Any],
    message: Callable[[Any], str],
    *,
    checks: bool = True,
    on: Any = None,
) -> Any:
    """The one "refuse now if concrete, else at run time" check of a value: `ok(value)`
    (NaN always fails) is tested at once when `value` is concrete, a `ValueError` whatever
    `checks` says, and inside the compiled program when it is traced (`checks=False` drops
    only that run-time check). `message(concrete_value_or_None)` says what was expected (and
    what came, when known). The check rides on `on` (default `value`), which is returned:
    use the result, or a compiled program may drop the check."""
    target = value if on is None else on
    if is_traced(value):
        if not checks:
            return target
        return guard(target, ~(ok(value) & ~jnp.isnan(value)), message(None))
    a = np.asarray(value)
    with jax.ensure_compile_time_eval():  # a concrete test, even inside a `jit` trace
        bad = np.isnan(a) | ~np.asarray(ok(a), bool)
    return guard(target, bad, message(value))


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

    def message(v):
        got = "" if v is None else f", got {name}={v!r}"
        return f"`{call}` needs {name} {expected}{got}."

    return checked_value(value, ok, message)


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
    # (the traced values are arrays: callables were filtered out above)
    bad = jnp.stack([jnp.any(~(specs[i][2](out[i]) & ~jnp.isnan(out[i])))  # pyright: ignore[reportArgumentType]
                     for i in traced])  # fmt: skip
    messages = tuple(f"`{call}` needs {specs[i][1]} {specs[i][3]}." for i in traced)
    guarded = eqx.branched_error_if(tuple(out[i] for i in traced), jnp.any(bad),
                                    jnp.argmax(bad), messages)  # fmt: skip
    for i, v in zip(traced, guarded):
        out[i] = v
    return out


# --- static configuration and 16-bit layers (structjax.nn, structjax.equivariant) ------------
#
# Sizes, orders, iteration counts and the like are *static* configuration: they fix shapes and
# loop lengths, and live in static fields. They must be concrete Python numbers; a traced value
# (a layer built inside `jit` from a traced number) is refused at trace time with a `TypeError`
# that says so, rather than failing later in a boolean conversion or a shape. Value ranges are
# checked through `hyperparameter` (NaN always fails).


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
    kind = _not_real_kind(d)
    if kind is not None:
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
