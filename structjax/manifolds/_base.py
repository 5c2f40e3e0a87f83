"""The abstract manifold: pure-function geometry on arrays, batched over leading axes.

Every public method of a manifold goes through `manifold_method`, the one place where
arguments are checked and 16-bit floats are handled:

- at trace time, each array argument must be a real float (`TypeError` otherwise) with the
  manifold's trailing point shape (`ValueError`);
- each base point (`x`, and `y` of `transport`/`log`/`distance`) must lie on the manifold:
  eagerly against the full constraint (`constraint_error(x) <= point_tolerance`, a
  `ValueError` at once); under `jit`/`vmap`/`grad` through `structjax._guards.guard`, with
  the test the method can afford: the full one in `exp`, `log` and `distance`, and on the
  hot path of an optimiser step (`to_tangent`, `egrad_to_rgrad`, `retract`, `inner`,
  `transport`, `norm`) a cheap one of the cost of a norm, which each manifold states;
- float16 and bfloat16 arguments are computed in float32 and the results cast back (the
  linear algebra kernels have no 16-bit versions; float32 keeps a 16-bit point on its
  manifold to its own precision).

`checks=False` on a manifold turns the value checks off (not the trace-time shape and dtype
checks, which cost nothing at run time).
"""

import abc
import contextvars
import dataclasses
import functools
import inspect
import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jax.typing import DTypeLike
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from .._guards import (
    attach,
    check_real_floating,
    compute_dtype,
    guard,
    is_traced,
    point_tolerance,
)

# A point or tangent vector: an array of shape `batch + point_shape` (a tuple of such
# arrays for `Product`).
Point = PyTree[Float[Array, "..."]]


class _Inside(NamedTuple):
    dtype: object  # the dtype the caller gave (float16 stays float16 here)
    call: str  # "Sphere(n=3).log(x, y)"


# Set while a public method runs: the methods it calls in turn skip the checks (already
# done, and they would name the wrong call) and know the caller's dtype.
_INSIDE: contextvars.ContextVar = contextvars.ContextVar("structjax_manifold", default=None)


class _Spec(NamedTuple):
    points: tuple[str, ...]  # base points: shape, dtype and domain checked
    arrays: tuple[str, ...]  # other arrays (tangent vectors): shape and dtype checked
    domain: str | None  # under a trace: "cheap" (hot path), "full", or None (no domain)


_SPECS = {
    "project": _Spec((), ("x",), None),
    "constraint_error": _Spec((), ("x",), None),
    "to_tangent": _Spec(("x",), ("v",), "cheap"),
    "egrad_to_rgrad": _Spec(("x",), ("g",), "cheap"),
    "retract": _Spec(("x",), ("v",), "cheap"),
    "inner": _Spec(("x",), ("u", "v"), "cheap"),
    "norm": _Spec(("x",), ("v",), "cheap"),
    "transport": _Spec(("x", "y"), ("v",), "cheap"),
    "random_tangent": _Spec(("x",), (), "cheap"),
    "exp": _Spec(("x",), ("v",), "full"),
    "log": _Spec(("x", "y"), (), "full"),
    "distance": _Spec(("x", "y"), (), "full"),
}


def _cast(tree, dtype):
    def leaf(a):
        if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating):
            return a.astype(dtype)
        return a

    return jtu.tree_map(leaf, tree)


def manifold_method(fn):
    """Wrap a public manifold method (its name picks its `_Spec`): argument checks, domain
    guards, and 16-bit floats computed in float32. See the module docstring."""
    spec = _SPECS[fn.__name__]
    signature = inspect.signature(fn)
    names = tuple(signature.parameters)[1:]

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        if _INSIDE.get() is not None:
            return fn(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        a = dict(bound.arguments)
        del a["self"]
        call = f"{self.describe()}.{fn.__name__}({', '.join(names)})"
        checked = spec.points + spec.arrays
        for n in checked:
            check_real_floating(a[n], call, n)
            self.check_shape(a[n], n, call)
        dtype = jnp.result_type(a[checked[0]])
        if jnp.dtype(dtype).itemsize < 4:
            a = {n: _cast(v, jnp.float32) if n in checked else v for n, v in a.items()}
        token = _INSIDE.set(_Inside(dtype, call))
        try:
            if spec.domain is not None and self.checks:
                guarded = self._guard_points(
                    {n: a[n] for n in spec.points}, dtype, call, full=spec.domain == "full"
                )
                a.update(guarded)
            out = fn(self, **a)
        finally:
            _INSIDE.reset(token)
        return _cast(out, dtype) if jnp.dtype(dtype).itemsize < 4 else out

    return wrapper


def random_point_method(fn):
    """Wrap `random_point(key, shape, dtype)`: the dtype must be a real float; 16-bit
    points are drawn and put on the manifold in float32, then rounded."""

    @functools.wraps(fn)
    def wrapper(self, key, shape=(), dtype=None):
        dtype = jnp.dtype(default_dtype(dtype))
        call = f"{self.describe()}.random_point(key, shape, dtype)"
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"`{call}` needs a real floating dtype, got dtype={dtype}.")
        token = _INSIDE.set(_Inside(dtype, call))
        try:
            out = fn(self, key, tuple(shape), compute_dtype(dtype))
        finally:
            _INSIDE.reset(token)
        return _cast(out, dtype)

    return wrapper


def storage_dtype(x):
    """The dtype the caller of the running method gave: that of `x` outside a method, and
    float16 (say) inside one whose arguments were float16 but computed in float32."""
    inside = _INSIDE.get()
    return jnp.dtype(x.dtype if inside is None else inside.dtype)


def refuse(self, x, bad, needs: str, found=None):
    """Inside a method: return `x`, refused where `bad` holds, with the message
    "`<the running call>` needs <needs>"; a no-op with `checks=False`."""
    inside = _INSIDE.get()
    call = inside.call if inside is not None else self.describe()
    return guard(x, bad, f"`{call}` needs {needs}.", found=found, checks=self.checks)


class AbstractManifold(eqx.Module):
    """A Riemannian manifold embedded in $\\mathbb{R}^{\\text{point\\_shape}}$.

    A point is an array whose trailing axes have shape `point_shape`; any leading axes are a
    batch, and every method maps over them. Tangent vectors are arrays of the point's shape
    (the embedded representation). Methods are pure and work under `jit`, `vmap` and `grad`.

    Every manifold implements `random_point`, `random_tangent`, `project`, `to_tangent`,
    `egrad_to_rgrad`, `retract`, `inner`, `transport` and `constraint_error`; `exp`, `log` and
    `distance` exist on the manifolds that have them in closed form.

    **Checks.** Every manifold takes `checks: bool = True` (keyword-only, static). Array
    arguments must be real floats (`TypeError`) of the point shape (`ValueError`), at trace
    time. Base points must be on the manifold: an eager call tests the full constraint and
    raises a `ValueError`; under `jit` the point is guarded (an `equinox` runtime error) by
    the full test in `exp`/`log`/`distance` and by a cheap one (each manifold says which) in
    the methods an optimiser step calls. `check_point(x)` applies the full test anywhere.
    float16 and bfloat16 work in every method (computed in float32, cast back).

    **Arguments:** (of every concrete manifold)

    - `checks`: `False` turns off the value checks (keyword-only, static).

    **Example:**

    ```pycon
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import structjax.manifolds as sm
    >>> m = sm.Sphere(3)  # any concrete AbstractManifold
    >>> x = m.random_point(jax.random.key(0), (5,))
    >>> g = m.egrad_to_rgrad(x, jnp.ones_like(x))
    >>> print(m.inner(x, g, x).shape, bool(jnp.all(m.constraint_error(m.retract(x, -g)) < 1e-12)))
    (5,) True

    ```
    """

    checks: eqx.AbstractVar[bool]

    @property
    @abc.abstractmethod
    def point_shape(self) -> tuple[int, ...]:
        """The shape of one point (the trailing axes of an array of points)."""

    @abc.abstractmethod
    def project(self, x: Point) -> Point:
        r"""The nearest point of the manifold (in the embedding's Euclidean norm).

        **Arguments:**

        - `x`: ambient arrays, shape `(..., *point_shape)`, real floating.

        **Returns:** points of the manifold, the shape and dtype of `x`.

        **Raises:** `TypeError`/`ValueError` for a non-float `x` or a wrong shape; where
        the nearest point is not unique (e.g. `x = 0` on the sphere) a `ValueError`
        (concrete) or an `equinox` runtime error.
        """

    @abc.abstractmethod
    def to_tangent(self, x: Point, v: Point) -> Point:
        r"""The orthogonal projection of an ambient vector `v` onto the tangent space at
        `x`.

        **Arguments:**

        - `x`: base points, shape `(..., *point_shape)` (leading axes a batch).
        - `v`: ambient vectors, the shape of `x`.

        **Returns:** tangent vectors at `x`, the shape of `x`.

        **Raises:** `TypeError` for a non-real-float array, `ValueError` for a wrong
        trailing shape (trace time); a base point off the manifold: `ValueError` when
        concrete, an `equinox` runtime error under `jit` (see **Checks**).
        """

    @abc.abstractmethod
    def egrad_to_rgrad(self, x: Point, g: Point) -> Point:
        r"""The Riemannian gradient at `x` from the Euclidean gradient `g` of a function on
        the embedding space.

        **Arguments:**

        - `x`: base points, shape `(..., *point_shape)` (leading axes a batch).
        - `g`: Euclidean gradients, the shape of `x`.

        **Returns:** the Riemannian gradients, tangent vectors at `x` of the shape of
        `x`.

        **Raises:** `TypeError` for a non-real-float array, `ValueError` for a wrong
        trailing shape (trace time); a base point off the manifold: `ValueError` when
        concrete, an `equinox` runtime error under `jit` (see **Checks**).
        """

    @abc.abstractmethod
    def retract(self, x: Point, v: Point) -> Point:
        r"""A retraction $R_x(v)$: a point, with $R_x(0) = x$ and $dR_x(0) = \mathrm{id}$.

        **Arguments:**

        - `x`: base points, shape `(..., *point_shape)` (leading axes a batch).
        - `v`: tangent vectors at `x`, the shape of `x`.

        **Returns:** points of the manifold, the shape of `x`.

        **Raises:** `TypeError` for a non-real-float array, `ValueError` for a wrong
        trailing shape (trace time); a base point off the manifold: `ValueError` when
        concrete, an `equinox` runtime error under `jit` (see **Checks**).
        """

    @abc.abstractmethod
    def inner(self, x: Point, u: Point, v: Point) -> Point:
        r"""The Riemannian metric $\langle u, v\rangle_x$, one number per point.

        **Arguments:**

        - `x`: base points, shape `(..., *point_shape)` (leading axes a batch).
        - `u`, `v`: tangent vectors at `x`, the shape of `x`.

        **Returns:** the inner products, shape `(...)` (the batch shape).

        **Raises:** `TypeError` for a non-real-float array, `ValueError` for a wrong
        trailing shape (trace time); a base point off the manifold: `ValueError` when
        concrete, an `equinox` runtime error under `jit` (see **Checks**).
        """

    @abc.abstractmethod
    def transport(self, x: Point, y: Point, v: Point) -> Point:
        r"""A vector transport of the tangent vector `v` at `x` to the tangent space at `y`.

        **Arguments:**

        - `x`: base points, shape `(..., *point_shape)` (leading axes a batch).
        - `y`: target points, the shape of `x`.
        - `v`: tangent vectors at `x`, the shape of `x`.

        **Returns:** tangent vectors at `y`, the shape of `x`.

        **Raises:** `TypeError` for a non-real-float array, `ValueError` for a wrong
        trailing shape (trace time); a base point off the manifold: `ValueError` when
        concrete, an `equinox` runtime error under `jit` (see **Checks**).
        """

    @abc.abstractmethod
    def constraint_error(self, x: Point) -> Point:
        r"""How far `x` is from the manifold (zero on it), one number per point.

        **Arguments:**

        - `x`: arrays, shape `(..., *point_shape)`.

        **Returns:** the errors, shape `(...)`, non-negative.

        **Raises:** `TypeError`/`ValueError` for a non-float `x` or a wrong shape.
        """

    @abc.abstractmethod
    def random_point(
        self, key: PRNGKeyArray, shape: tuple[int, ...] = (), dtype: DTypeLike | None = None
    ) -> Point:
        r"""Random points with batch shape `shape`.

        **Arguments:**

        - `key`: a JAX PRNG key.
        - `shape`: the batch shape (default `()`: one point).
        - `dtype`: a real floating dtype (default: JAX's default float).

        **Returns:** points of the manifold, shape `shape + point_shape`, dtype `dtype`.

        **Raises:** `TypeError` for a non-real-floating `dtype`.
        """

    @manifold_method
    def random_tangent(self, key: PRNGKeyArray, x: Point) -> Point:
        r"""A random tangent vector at each point of `x` (standard normal, projected).

        **Arguments:**

        - `key`: a JAX PRNG key.
        - `x`: base points, shape `(..., *point_shape)` (leading axes a batch).

        **Returns:** tangent vectors at `x`, the shape and dtype of `x`.

        **Raises:** `TypeError` for a non-real-float array, `ValueError` for a wrong
        trailing shape (trace time); a base point off the manifold: `ValueError` when
        concrete, an `equinox` runtime error under `jit` (see **Checks**).
        """
        return self.to_tangent(x, jax.random.normal(key, x.shape, x.dtype))

    @manifold_method
    def norm(self, x: Point, v: Point) -> Point:
        r"""The Riemannian norm $\|v\|_x = \sqrt{\langle v, v\rangle_x}$, one number per
        point.

        **Arguments:**

        - `x`: base points, shape `(..., *point_shape)` (leading axes a batch).
        - `v`: tangent vectors at `x`, the shape of `x`.

        **Returns:** the norms, shape `(...)`.

        **Raises:** `TypeError` for a non-real-float array, `ValueError` for a wrong
        trailing shape (trace time); a base point off the manifold: `ValueError` when
        concrete, an `equinox` runtime error under `jit` (see **Checks**).
        """
        return jnp.sqrt(jnp.maximum(self.inner(x, v, v), 0.0))

    # --- checks -------------------------------------------------------------------------

    def describe(self) -> str:
        """The manifold as a call, for messages: `Stiefel(n=5, p=2)` (fields at their
        defaults and `checks` left out)."""
        parts = []
        for f in dataclasses.fields(self):
            if f.name == "checks" or not f.init:
                continue
            value = getattr(self, f.name)
            if f.default is dataclasses.MISSING or value != f.default:
                parts.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def check_shape(self, x: PyTree[ArrayLike], name: str = "x", call: str | None = None) -> None:
        r"""Raise a `ValueError` unless the trailing axes of `x` are `point_shape`.

        **Arguments:**

        - `x`: an array (a pytree of arrays for `Product`).
        - `name`: the argument's name in messages.
        - `call`: the call to name in messages.

        **Returns:** `None`.

        **Raises:** `ValueError` for a wrong trailing shape.
        """
        k = len(self.point_shape)
        shape = jnp.shape(x)
        if tuple(shape[len(shape) - k :]) != tuple(self.point_shape) or len(shape) < k:
            where = f"`{call}`" if call is not None else f"{self.describe()} points"
            raise ValueError(
                f"{where} needs `{name}` with trailing shape {tuple(self.point_shape)} "
                f"(a batch of {self.describe()} points or tangent vectors), got shape "
                f"{tuple(shape)}."
            )

    def check_point(self, x: Point, name: str = "x", call: str | None = None) -> Point:
        """`x`, refused unless it is on the manifold by the full test,
        `constraint_error(x) <= point_tolerance(dtype, size)` (plus strict definiteness for
        SPD and strict interior for the Poincaré ball).

        **Arguments:**

        - `x`: a point or a batch of points.
        - `name`: the argument's name in messages.
        - `call`: the call to name in messages (default `Manifold(...).check_point(x)`),
          e.g. `"riemannian_adam(...).init(params)"`.

        **Returns:** `x`, with the check attached under a trace (use the returned value).

        **Raises:** `TypeError` for a non-float `x`, `ValueError` for a wrong shape or (when
        concrete) a point off the manifold; under `jit` an `equinox` runtime error.
        """
        call = call if call is not None else f"{self.describe()}.check_point({name})"
        check_real_floating(x, call, name)
        self.check_shape(x, name, call)
        if not self.checks:
            return x
        dtype = jnp.result_type(x)
        xc = _cast(x, jnp.float32) if jnp.dtype(dtype).itemsize < 4 else x
        token = _INSIDE.set(_Inside(dtype, call))
        try:
            bad, found, needs = self._off(xc, self._tolerance(dtype), full=True)
        finally:
            _INSIDE.reset(token)
        return guard(x, bad, f"`{call}` needs `{name}` {needs}.", found=found)

    def _tolerance(self, dtype) -> float:
        return point_tolerance(dtype, math.prod(self.point_shape))

    def _off(self, x, tol: float, full: bool):
        """`(bad, found, needs)`: where `x` is refused (one flag per point), the value to
        report, and what is needed ("on the sphere (...)"). The default tests
        `constraint_error(x) <= tol`, cheap or not; manifolds with a cheaper hot-path test
        override it."""
        err = self.constraint_error(x)
        return ~(err <= tol), jnp.max(err), f"on the manifold (constraint error <= {tol:.0e})"

    def _guard_points(self, points: dict, dtype, call: str, full: bool) -> dict:
        """The points, each refused off the manifold (the full test when concrete); one
        runtime check for all of them under a trace."""
        tol = self._tolerance(dtype)
        tests = {n: self._off(x, tol, full=full or not is_traced(x)) for n, x in points.items()}
        msgs = [f"`{call}` needs `{n}` {needs}." for n, (_, _, needs) in tests.items()]
        if not is_traced([bad for bad, _, _ in tests.values()]) or len(points) == 1:
            return {
                n: guard(x, bad, msg, found=found)
                for (n, x), (bad, found, _), msg in zip(points.items(), tests.values(), msgs)
            }
        flags = jnp.stack([jnp.any(bad) for bad, _, _ in tests.values()])
        return attach(points, lambda flag: eqx.branched_error_if(
            flag, jnp.any(flags), jnp.argmax(flags), msgs))  # fmt: skip


def batch_inner(u, v, ndim: int):
    """$\\sum$ over the last `ndim` axes of $u v$: the Euclidean inner product per point."""
    return jnp.sum(u * v, axis=tuple(range(-ndim, 0))) if ndim else u * v


def default_dtype(dtype):
    return jnp.result_type(float) if dtype is None else dtype


def frobenius_defect(x, p: int):
    """$|\\,\\|X\\|_F^2 - p\\,| / \\sqrt p \\le \\|X^\\top X - I\\|_F$: the hot-path test of
    orthonormal columns, O(np) (a norm) where the full test is a Gram product, O(np^2)."""
    return jnp.abs(jnp.sum(x * x, axis=(-2, -1)) - p) / math.sqrt(p)


class AbstractHyperbolic(AbstractManifold):
    """The base of the hyperbolic models (`Lorentz`, `PoincareBall`): hyperbolic space of
    dimension `n` and sectional curvature `curvature` $= -c < 0$, whatever the model."""

    n: int = eqx.field(static=True)
    curvature: float = eqx.field(static=True, default=-1.0)
    checks: bool = eqx.field(static=True, default=True, kw_only=True)

    def __check_init__(self):
        call = f"`{type(self).__name__}(n={self.n}, curvature={self.curvature})`"
        if self.n < 1:
            raise ValueError(f"{call} needs n >= 1.")
        if not self.curvature < 0:
            raise ValueError(
                f"{call} needs curvature < 0 (hyperbolic space); use `Euclidean` for "
                "curvature 0 and `Sphere` for positive curvature."
            )

    @property
    def c(self) -> float:
        """$c = -$curvature $> 0$."""
        return -float(self.curvature)
