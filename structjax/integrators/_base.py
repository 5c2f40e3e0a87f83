"""The contract of structjax's solvers: what `solve_fixed`, the certificates and the layers
may ask of a structure-preserving solver, declared once."""

import abc
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import diffrax
import equinox as eqx
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array, Bool, PyTree, Real

# A time or step: a real scalar (diffrax's convention: plain unions for the type checker, the
# jaxtyping form, checked at runtime, otherwise).
if TYPE_CHECKING:
    RealScalarLike = int | float | Array | np.ndarray
else:
    RealScalarLike = Real[ArrayLike, ""]


def _matrix(m) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in m)


def _vector(v) -> tuple[float, ...]:
    return tuple(float(x) for x in v)


class StageTableau(eqx.Module):
    """The coefficients $(A, b, c)$ of an $s$-stage Runge–Kutta-type method, its order and
    its source (Hairer, Nørsett & Wanner, *Solving ODEs I*, Sec. II.1, eq. (1.8)): the data
    shared by the implicit (`ImplicitTableau`) and the Lie-group (`LieTableau`) families.
    Static and hashable (its fields are tuples of floats), checked at construction: $A$ is
    $s \\times s$ with $s$ the length of $b$ and $c$, the coefficients are finite,
    $\\sum_i b_i = 1$ (consistency) and `order` is an int >= 1."""

    a: tuple[tuple[float, ...], ...] = eqx.field(static=True, converter=_matrix)
    b: tuple[float, ...] = eqx.field(static=True, converter=_vector)
    c: tuple[float, ...] = eqx.field(static=True, converter=_vector)
    order: int = eqx.field(static=True)
    source: str = eqx.field(static=True)

    def __check_init__(self):
        name, s = type(self).__name__, len(self.b)
        if not s or len(self.c) != s or len(self.a) != s or any(len(r) != s for r in self.a):
            raise ValueError(
                f"`{name}` needs A of shape (s, s) with s = len(b) = len(c) >= 1; got b of "
                f"length {s}, c of length {len(self.c)}, A rows of lengths "
                f"{[len(r) for r in self.a]}."
            )
        values = [v for r in self.a for v in r] + list(self.b) + list(self.c)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"`{name}` needs finite coefficients.")
        if abs(math.fsum(self.b) - 1.0) > 1e-12:
            raise ValueError(
                f"`{name}` needs weights b summing to 1 (a consistent method), got "
                f"sum(b) = {math.fsum(self.b)!r}."
            )
        if isinstance(self.order, bool) or not isinstance(self.order, int) or self.order < 1:
            raise ValueError(f"`{name}(order={self.order!r})` needs an int >= 1.")

    @property
    def stages(self) -> int:
        return len(self.b)


class AbstractStructuredSolver(diffrax.AbstractSolver):
    """The base of every structjax solver: a `diffrax.AbstractSolver` (so `diffeqsolve`
    runs it unchanged) that also declares what a fixed-step driver may ask of it. The driver
    (`solve_fixed`) asks through these methods and never looks inside a solver; a new family
    (an adjoint, a discrete-gradient method) joins by implementing them.

    **What every structured solver has:**

    - `one_step(terms, t0, h, y0, args)`: one step of length `h` as a pure function (the map
        the certificates measure and the layers compose); it raises if a step failed.
    - `error_order(terms) -> None`: fixed steps only (no embedded error estimate: changing
        the step breaks the structure the method preserves).
    - `interpolation_cls`: the cubic Hermite interpolant whose slopes are the increments over
        the step (a Lie-group method overrides it).

    **Capabilities a driver may use** (each with a default that is always correct):

    - `check_problem(terms, y0, args, t0)`: the trace-time refusals of terms and state
        (`init` runs them too); by default none.
    - `steps_can_fail`: whether a step can fail (an implicit solve that does not converge);
        if not, the driver tracks no success flag.
    - `fixed_step(terms, t, dt, y, args, state)`: one step in the fixed-step loop, without
        dense output: `(y1, state, success)` (`success` a boolean scalar, or `None` where a
        step cannot fail). By default `step` without its dense output.
    - `fused_fixed_loop(terms, y0, args, t0, dt, num_steps, chunk)`: the whole loop in a
        faster form with the same map (the merged-kick leapfrog form of a splitting), the
        states after every `chunk` steps stacked; `None` (the default) to decline.
    - `check_reversible(call)`: raises `ValueError`, naming `call`, unless the steps invert
        exactly, so the reversible adjoint may rebuild a trajectory backwards; by default it
        raises.
    - `inverse_step(terms, t, dt, y1, args)`: the exact inverse of `one_step(terms, t, dt,
        ., args)`, for solvers whose `check_reversible` passes.

    **Example:** every structjax solver honours the contract, which `solve_fixed` uses.

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> terms = si.separable_terms(lambda p, a: 0.5 * jnp.sum(p**2),
    ...                            lambda q, a: 0.5 * jnp.sum(q**2))
    >>> solver = si.KahanLi6()
    >>> isinstance(solver, si.AbstractStructuredSolver), solver.error_order(terms)
    (True, None)
    >>> y0 = (jnp.array([1.0]), jnp.array([0.0]))
    >>> y1 = solver.one_step(terms, 0.0, 0.1, y0)
    >>> back = solver.inverse_step(terms, 0.0, 0.1, y1)  # exact inverse
    >>> print(bool(jnp.max(jnp.abs(back[0] - y0[0])) < 1e-14))
    True

    ```
    """

    interpolation_cls: ClassVar[Callable[..., diffrax.AbstractLocalInterpolation]] = (
        diffrax.ThirdOrderHermitePolynomialInterpolation
    )
    steps_can_fail: ClassVar[bool] = True

    def error_order(self, terms: PyTree) -> None:
        return None

    @abc.abstractmethod
    def one_step(
        self, terms: PyTree, t0: RealScalarLike, h: RealScalarLike, y0: PyTree, args: PyTree = None
    ) -> PyTree:
        """One step of length `h` from `(t0, y0)`, as a pure function."""

    def check_problem(self, terms: PyTree, y0: PyTree, args: PyTree, t0: RealScalarLike) -> None:
        """Trace-time refusals of `terms` and `y0` (none by default)."""
        del terms, y0, args, t0

    def fixed_step(
        self,
        terms: PyTree,
        t: RealScalarLike,
        dt: RealScalarLike,
        y: PyTree,
        args: PyTree,
        state: PyTree,
    ) -> tuple[PyTree, PyTree, Bool[Array, ""] | None]:
        """One step of the fixed-step loop: `(y1, state, success)`."""
        y1, _, _, state, result = self.step(terms, t, t + dt, y, args, state, False)
        return y1, state, result == diffrax.RESULTS.successful

    def fused_fixed_loop(
        self,
        terms: PyTree,
        y0: PyTree,
        args: PyTree,
        t0: RealScalarLike,
        dt: RealScalarLike,
        num_steps: int,
        chunk: int,
    ) -> PyTree | None:
        """The fixed-step loop in a fused form, or `None` to let the driver step plainly."""
        del terms, y0, args, t0, dt, num_steps, chunk
        return None

    def check_reversible(self, call: str) -> None:
        """Raise unless the steps invert exactly (the reversible adjoint needs it)."""
        raise ValueError(
            f"`{call}` needs a solver whose steps invert exactly (a structjax splitting "
            f"method); {type(self).__name__} does not."
        )

    def inverse_step(
        self, terms: PyTree, t: RealScalarLike, dt: RealScalarLike, y1: PyTree, args: PyTree = None
    ) -> PyTree:
        """The exact inverse of `one_step(terms, t, dt, ., args)` at `y1`."""
        self.check_reversible(f"{type(self).__name__}.inverse_step")
        raise AssertionError("unreachable: check_reversible raised")  # pragma: no cover
