"""Discrete gradient methods: integrators that keep a first integral exactly, at every step
size, and dissipate it exactly in their dissipative form.

For $\\dot y = (S(y) - D(y))\\nabla H(y)$ with $S$ skew and $D$ positive semidefinite, a
discrete gradient $\\bar\\nabla H(y, y')$ is a map with $\\bar\\nabla H(y, y) = \\nabla H(y)$
and the discrete chain rule $H(y') - H(y) = \\bar\\nabla H(y, y')^\\top (y' - y)$ (Gonzalez
1996; McLachlan, Quispel & Robidoux 1999, "Geometric integration using discrete gradients",
Phil. Trans. R. Soc. A 357, Sec. 2). The step
$y_1 = y_0 + h\\,(S - D)(\\bar y)\\,\\bar\\nabla H(y_0, y_1)$ ($\\bar y$ the midpoint) then
gives $H(y_1) - H(y_0) = -h\\,\\bar\\nabla H^\\top D\\,\\bar\\nabla H$ exactly: zero without
dissipation, whatever $h$.
"""

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike
from jaxtyping import Array, PyTree

from .._guards import static_int
from ._implicit import RootFindingSolver, _unwrap, default_newton, hermite_step

_Step = tuple[PyTree, None, dict, None, diffrax.RESULTS]


def _canonical(n: int, dtype) -> Array:
    """The canonical symplectic matrix $J = [[0, I], [-I, 0]]$ of size `n` (even)."""
    m = n // 2
    eye = jnp.eye(m, dtype=dtype)
    zero = jnp.zeros((m, m), dtype)
    return jnp.block([[zero, eye], [-eye, zero]])


class PoissonTerm(diffrax.AbstractTerm):
    """The vector field $\\dot y = (S(y) - D(y))\\nabla H(y)$ of a Poisson system with
    dissipation: $H$ a scalar function of the state (any pytree, flattened to a vector
    $y \\in \\mathbb R^n$ for $S$ and $D$), $S$ skew-symmetric (the Poisson structure), $D$
    symmetric positive semidefinite (the dissipation). Canonical Hamiltonian systems are
    $S = J$ on `y = (q, p)`; the free rigid body in Euler's equations is $S(m) = \\hat m$;
    Lotka–Volterra, $S(u, v) = uv\\,[[0, 1], [-1, 0]]$.

    It runs with every diffrax solver; the discrete gradient methods (`AVF`, `Gonzalez`,
    `ItohAbe`) need it, to keep $H$ exactly.

    **Arguments:**

    - `hamiltonian`: `H(y, args) -> scalar` (a function or an equinox module, a pytree
        field: a learned $H$ is differentiated through).
    - `structure`: $S$: an $n \\times n$ array, or `S(y_flat, args) -> (n, n)` array; `None`
        (default) for the canonical $J$ on a state `(q, p)` of two equal halves.
    - `dissipation`: $D$ in the same forms, or `None` (no dissipation).

    The methods assume $S$ skew and $D$ positive semidefinite: `check_structure` measures
    both at a state.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> term = si.PoissonTerm(lambda y, args: 0.5 * jnp.sum(y**2))  # canonical J on (q, p)
    >>> term.vf(0.0, jnp.asarray([1.0, 2.0]), None).tolist()  # (dH/dp, -dH/dq)
    [2.0, -1.0]

    ```
    """

    hamiltonian: Callable
    structure: Callable | Array | None = None
    dissipation: Callable | Array | None = None

    def matrices(self, z: Array, args: PyTree) -> tuple[Array, Array | None]:
        """$(S, D)$ at the flattened state `z` (`D` is `None` without dissipation)."""
        n = z.shape[0]
        if self.structure is None:
            if n % 2:
                raise ValueError(
                    "`PoissonTerm(structure=None)` is the canonical J on a state (q, p) of two "
                    f"equal halves; the state has {n} numbers. Pass `structure=`."
                )
            s = _canonical(n, z.dtype)
        elif callable(self.structure):
            s = jnp.asarray(self.structure(z, args))
        else:
            s = jnp.asarray(self.structure)
        d = self.dissipation
        if d is not None:
            d = jnp.asarray(d(z, args) if callable(d) else d)
        for name, m in (("structure", s), ("dissipation", d)):
            if m is not None and m.shape != (n, n):
                raise ValueError(
                    f"`PoissonTerm({name}=...)` needs an ({n}, {n}) matrix for a state of {n} "
                    f"numbers, got shape {m.shape}."
                )
        return s.astype(z.dtype), None if d is None else d.astype(z.dtype)

    def energy(self, y: PyTree, args: PyTree = None) -> Array:
        """$H(y)$."""
        return jnp.asarray(self.hamiltonian(y, args))

    def vf(self, t: ArrayLike, y: PyTree, args: PyTree) -> PyTree:
        """$(S - D)\\nabla H$ at `y`."""
        z, unravel = ravel_pytree(y)
        g = jax.grad(lambda x: self.hamiltonian(unravel(x), args))(z)
        s, d = self.matrices(z, args)
        a = s if d is None else s - d
        return unravel(a @ g)

    def contr(self, t0: ArrayLike, t1: ArrayLike, **kwargs) -> ArrayLike:
        """The control `t1 - t0` (time)."""
        return t1 - t0  # pyright: ignore[reportOperatorIssue]

    def prod(self, vf: PyTree[ArrayLike], control: ArrayLike) -> PyTree[ArrayLike]:
        """`control * vf`, leaf by leaf."""
        return jtu.tree_map(lambda v: control * v, vf)


def _flat_h(term: PoissonTerm, unravel, args):
    return lambda x: jnp.asarray(term.hamiltonian(unravel(x), args))


class AbstractDiscreteGradient(RootFindingSolver):
    """A discrete gradient method for a `PoissonTerm`: the step
    $y_1 = y_0 + h\\,(S - D)(\\bar y)\\,\\bar\\nabla H(y_0, y_1)$, $\\bar y = (y_0 + y_1)/2$,
    solved for $y_1$ by a root finder (default `optimistix.Newton`), so that
    $H(y_1) - H(y_0) = -h\\,\\bar\\nabla H^\\top D(\\bar y)\\,\\bar\\nabla H$ (zero without
    dissipation) to the solve's tolerance, at every step size. A subclass gives the
    discrete gradient (`discrete_gradient(h_fn, z0, z1)` on flat vectors). A failed solve is
    a diffrax `RESULTS` failure and an error in `solve_fixed` and `one_step`.

    **Arguments:**

    - `root_finder`: an optimistix root finder for the step's equation; default (None)
        `optimistix.Newton` at `rtol = atol = max(1e-13, 100 eps)`.
    - `max_steps`: its iteration limit (a Python int >= 1, default 64).

    **Raises:** `TypeError` at construction for a `root_finder` that is not an optimistix
    root finder, `ValueError` for `max_steps < 1`; `ValueError` at the start of a solve
    unless `terms` is a `PoissonTerm`.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> term = si.PoissonTerm(lambda y, args: 0.5 * jnp.sum(y**2),
    ...                       dissipation=jnp.diag(jnp.asarray([0.0, 0.5])))
    >>> y0 = jnp.asarray([1.0, 0.0])
    >>> y1 = si.Gonzalez().one_step(term, 0.0, 1.0, y0)
    >>> change, dissipated = si.Gonzalez().energy_change(term, y0, y1, h=1.0)
    >>> bool(abs(change - dissipated) < 1e-14), bool(change < 0)
    (True, True)

    ```
    """

    def discrete_gradient(self, h_fn: Callable, z0: Array, z1: Array) -> Array:
        """$\\bar\\nabla H(z_0, z_1)$ of the scalar `h_fn` on flat vectors."""
        raise NotImplementedError

    def init(self, terms: PyTree, t0: ArrayLike, t1: ArrayLike, y0: PyTree, args: PyTree
             ) -> None:  # fmt: skip
        self.check_problem(terms, y0, args, t0)
        return None

    def check_problem(self, terms: PyTree, y0: PyTree, args: PyTree, t0: ArrayLike) -> None:
        """A `PoissonTerm`, whose $H$, $S$ and $D$ the method takes apart."""
        if not isinstance(_unwrap(terms), PoissonTerm):
            raise ValueError(
                f"{type(self).__name__} needs `terms = structjax.integrators.PoissonTerm(H, "
                f"structure=S, dissipation=D)`, to keep H; got {type(terms).__name__}."
            )

    def step(self, terms: PyTree, t0: ArrayLike, t1: ArrayLike, y0: PyTree, args: PyTree,
             solver_state: None, made_jump: ArrayLike) -> _Step:  # fmt: skip
        term: PoissonTerm = _unwrap(terms)  # pyright: ignore[reportAssignmentType]
        z0, unravel = ravel_pytree(y0)
        h = jnp.asarray(terms.contr(t0, t1)).astype(z0.dtype)
        h_fn = _flat_h(term, unravel, args)
        root_finder = self.root_finder or default_newton(z0.dtype)

        def residual(z1, _):
            s, d = term.matrices(0.5 * (z0 + z1), args)
            a = s if d is None else s - d
            return z1 - z0 - h * (a @ self.discrete_gradient(h_fn, z0, z1))

        s0, d0 = term.matrices(z0, args)
        guess = z0 + h * ((s0 if d0 is None else s0 - d0) @ jax.grad(h_fn)(z0))
        sol = optx.root_find(residual, root_finder, guess, throw=False, max_steps=self.max_steps)
        y1 = unravel(sol.value)
        return hermite_step(self, terms, t0, t1, y0, y1, args, None,
                            diffrax.RESULTS.promote(sol.result))  # fmt: skip

    def energy_change(self, terms: PyTree, y0: PyTree, y1: PyTree, args: PyTree = None,
                      h: ArrayLike = 1.0) -> tuple[Array, Array]:  # fmt: skip
        """`(H(y1) - H(y0), -h dgH^T D dgH)`: the energy change of a step and the discrete
        dissipation the method promises it equals (0 without dissipation)."""
        term: PoissonTerm = _unwrap(terms)  # pyright: ignore[reportAssignmentType]
        z0, unravel = ravel_pytree(y0)
        z1, _ = ravel_pytree(y1)
        h_fn = _flat_h(term, unravel, args)
        g = self.discrete_gradient(h_fn, z0, z1)
        _, d = term.matrices(0.5 * (z0 + z1), args)
        dissipated = jnp.zeros((), z0.dtype) if d is None else -jnp.asarray(h) * (g @ d @ g)
        return h_fn(z1) - h_fn(z0), dissipated


class AVF(AbstractDiscreteGradient):
    """The averaged vector field method (Quispel & McLaren 2008, "A new class of
    energy-preserving numerical integration methods", J. Phys. A 41, 045206, eq. (3)):
    the discrete gradient $\\bar\\nabla H = \\int_0^1 \\nabla H(y_0 + \\xi(y_1 - y_0))\\,d\\xi$,
    the integral by Gauss–Legendre quadrature on `quadrature` points (nodes and weights
    computed by `numpy.polynomial.legendre.leggauss`), exact for a polynomial $H$ of
    degree up to `2 * quadrature`. Order 2, symmetric (so `Composition`-ready), B-series.
    With $D = 0$ it keeps $H$ to the solve's tolerance at any step (for non-polynomial $H$,
    to the quadrature's accuracy).

    **Arguments:**

    - `quadrature`: the number of Gauss–Legendre points, an int >= 1 (default 3).
    - `root_finder`, `max_steps`: as for `GeneralizedLeapfrog`.

    **Raises:** `ValueError` for `quadrature < 1` or `max_steps < 1`, `TypeError` for a
    `root_finder` that is not an optimistix root finder; `ValueError` at the start of a
    solve unless `terms` is a `PoissonTerm`.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> H = lambda y, args: 0.5 * y[1] ** 2 + 0.25 * y[0] ** 4  # quartic oscillator
    >>> term, y0 = si.PoissonTerm(H), jnp.asarray([1.0, 0.0])
    >>> y1 = si.AVF().one_step(term, 0.0, 0.5, y0)  # a large step
    >>> bool(abs(H(y1, None) - H(y0, None)) < 1e-13)
    True

    ```
    """

    quadrature: int = eqx.field(static=True, default=3)

    def __check_init__(self):
        static_int(self.quadrature, f"AVF(quadrature={self.quadrature!r})", "quadrature",
                   minimum=1)  # fmt: skip

    def order(self, terms: PyTree) -> int:
        return 2

    def discrete_gradient(self, h_fn: Callable, z0: Array, z1: Array) -> Array:
        """$\\int_0^1 \\nabla H(z_0 + \\xi (z_1 - z_0)) d\\xi$ by Gauss–Legendre."""
        nodes, weights = np.polynomial.legendre.leggauss(self.quadrature)  # on [-1, 1]
        grad = jax.grad(h_fn)
        out = jnp.zeros_like(z0)
        for x, w in zip(nodes, weights):
            xi = 0.5 * (float(x) + 1.0)  # mapped to [0, 1], weights halved
            out = out + 0.5 * float(w) * grad(z0 + xi * (z1 - z0))
        return out


class Gonzalez(AbstractDiscreteGradient):
    """The midpoint discrete gradient (Gonzalez 1996, "Time integration and discrete
    Hamiltonian systems", J. Nonlinear Sci. 6, eq. (3.7); McLachlan, Quispel & Robidoux
    1999, eq. (2.6)): $\\bar\\nabla H = \\nabla H(\\bar y) + \\frac{H(y_1) - H(y_0) -
    \\nabla H(\\bar y)^\\top\\Delta}{|\\Delta|^2}\\Delta$, $\\Delta = y_1 - y_0$,
    $\\bar y$ the midpoint: exact for any $H$ (no quadrature), order 2, symmetric. Below
    $|\\Delta| = $ `sqrt(eps)` times the state's size the correction, whose numerator is then
    rounding, is dropped (the chain rule's residual is then below eps).

    **Arguments:** `root_finder`, `max_steps`: as for `AVF`.

    **Raises:** as `AVF`.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> H = lambda y, args: 0.5 * y[1] ** 2 - jnp.cos(y[0])  # the pendulum
    >>> term, y0 = si.PoissonTerm(H), jnp.asarray([2.0, 0.0])
    >>> y1 = si.Gonzalez().one_step(term, 0.0, 0.7, y0)
    >>> bool(abs(H(y1, None) - H(y0, None)) < 1e-13)
    True

    ```
    """

    def order(self, terms: PyTree) -> int:
        return 2

    def discrete_gradient(self, h_fn: Callable, z0: Array, z1: Array) -> Array:
        """Gonzalez's midpoint discrete gradient."""
        delta = z1 - z0
        g = jax.grad(h_fn)(0.5 * (z0 + z1))
        sq = jnp.sum(delta**2)
        scale = jnp.finfo(z0.dtype).eps * (1.0 + jnp.sum(z0**2) + jnp.sum(z1**2))
        small = sq <= scale
        safe = jnp.where(small, 1.0, sq)
        corr = (h_fn(z1) - h_fn(z0) - g @ delta) / safe
        return g + jnp.where(small, 0.0, corr) * delta


class ItohAbe(AbstractDiscreteGradient):
    """The coordinate-increment discrete gradient (Itoh & Abe 1988, "Hamiltonian-conserving
    discrete canonical equations based on variational difference quotients", J. Comput.
    Phys. 76, eq. (2.8); McLachlan, Quispel & Robidoux 1999, eq. (2.5)):
    $\\bar\\nabla_i H = \\frac{H(w_i) - H(w_{i-1})}{y_{1,i} - y_{0,i}}$,
    $w_i = (y_{1,1}, \\dots, y_{1,i}, y_{0,i+1}, \\dots, y_{0,n})$: $n$ evaluations of $H$,
    no gradient, the chain rule holding by telescoping. Order 1 (not symmetric). Where
    $|y_{1,i} - y_{0,i}|$ is below `sqrt(eps)` times the coordinates' size the difference
    quotient is replaced by the partial derivative at the middle of the increment.

    **Arguments:** `root_finder`, `max_steps`: as for `AVF`.

    **Raises:** as `AVF`.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> H = lambda y, args: 0.5 * jnp.sum(y[2:] ** 2) + 0.25 * jnp.sum(y[:2] ** 4)
    >>> term, y0 = si.PoissonTerm(H), jnp.asarray([1.0, -0.5, 0.0, 0.3])  # (q, p) in R^2
    >>> ys = si.solve_fixed(term, si.ItohAbe(), y0, dt=1.0, num_steps=10).y1
    >>> bool(abs(H(ys, None) - H(y0, None)) < 1e-12)
    True

    ```
    """

    def order(self, terms: PyTree) -> int:
        return 1

    def discrete_gradient(self, h_fn: Callable, z0: Array, z1: Array) -> Array:
        """Itoh and Abe's coordinate-increment discrete gradient."""
        n = z0.shape[0]
        idx = jnp.arange(n)
        # w_i for i = 0..n: the first i coordinates from z1, the rest from z0
        ws = jnp.where(idx[None, :] < jnp.arange(n + 1)[:, None], z1[None, :], z0[None, :])
        hs = jax.vmap(h_fn)(ws)
        delta = z1 - z0
        tol = jnp.sqrt(jnp.finfo(z0.dtype).eps) * (1.0 + jnp.abs(z0) + jnp.abs(z1))
        small = jnp.abs(delta) <= tol
        quotient = (hs[1:] - hs[:-1]) / jnp.where(small, 1.0, delta)
        mids = 0.5 * (ws[1:] + ws[:-1])  # the middle of the i-th increment
        partial = jax.vmap(lambda w, i: jax.grad(h_fn)(w)[i])(mids, idx)
        return jnp.where(small, partial, quotient)
