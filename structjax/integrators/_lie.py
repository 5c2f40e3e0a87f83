"""Lie-group integrators: Runge–Kutta–Munthe-Kaas and Crouch–Grossman, for $\\dot Y = A(t, Y)\\,Y$
with $A$ in a matrix Lie algebra, so that $Y$ stays on its group (or homogeneous space) to
rounding, whatever the step."""

import abc
from collections.abc import Callable
from typing import ClassVar

import diffrax
import equinox as eqx
import jax.numpy as jnp
import jax.tree_util as jtu
from diffrax._term import WrapTerm  # what diffeqsolve wraps every term in (no public name)
from equinox import AbstractVar
from jaxtyping import Array, ArrayLike, Float, Inexact, PyTree

from .._groups import Group
from .._guards import guard, point_tolerance
from .._linalg import cayley, expm
from ..check._lie import check_group, group_name, lie_group_error
from ._base import AbstractStructuredSolver, StageTableau


class LieTableau(StageTableau):
    """The coefficients $(a, b, c)$ of an explicit $s$-stage method of a Lie-group family, its
    order and its source: the data of `RKMK` (an explicit Runge–Kutta table, used in the
    algebra) and of `CrouchGrossman` (its own order conditions; Owren & Marthinsen 1999).

    **Arguments:** `a` (an $s \times s$ strictly lower-triangular matrix: explicit), `b` and
    `c` (length $s$), `order` (an int >= 1), `source` (where the coefficients come from).

    **Raises:** `ValueError` at construction for inconsistent shapes, non-finite
    coefficients, weights not summing to 1, an `order` that is not an int >= 1 (the checks
    of every `StageTableau`), or a non-zero entry on or above the diagonal of `a`.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> euler = si.LieTableau(a=[[0.0]], b=[1.0], c=[0.0], order=1, source="Euler")
    >>> si.RKMK(tableau=euler).order(None)
    1

    ```
    """

    def __check_init__(self):
        s = len(self.b)
        if any(self.a[i][j] for i in range(s) for j in range(i, s)):
            raise ValueError(
                "`LieTableau` needs an explicit method: a strictly lower-triangular a."
            )


# Explicit Runge–Kutta tableaux of orders 1 to 4 for RKMK: forward Euler; the explicit
# midpoint rule (Runge 1895); Kutta's third-order method (Kutta 1901); the classical
# fourth-order method. Hairer, Nørsett & Wanner, *Solving ODEs I*, Sec. II.1, Table 1.1 and
# eq. (1.9).
_HNW = "Hairer, Nørsett & Wanner, Solving ODEs I, Sec. II.1"
_RK_TABLEAUX = {
    1: LieTableau(((0.0,),), (1.0,), (0.0,), 1, f"forward Euler ({_HNW})"),
    2: LieTableau(
        ((0.0, 0.0), (0.5, 0.0)),
        (0.0, 1.0),
        (0.0, 0.5),
        2,
        f"explicit midpoint, Runge 1895 ({_HNW})",
    ),  # fmt: skip
    3: LieTableau(
        ((0.0, 0.0, 0.0), (0.5, 0.0, 0.0), (-1.0, 2.0, 0.0)),
        (1 / 6, 2 / 3, 1 / 6),
        (0.0, 0.5, 1.0),
        3,
        f"Kutta 1901, third order ({_HNW}, Table 1.1)",
    ),
    4: LieTableau(
        ((0.0, 0.0, 0.0, 0.0), (0.5, 0.0, 0.0, 0.0), (0.0, 0.5, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0)),
        (1 / 6, 1 / 3, 1 / 3, 1 / 6),
        (0.0, 0.5, 0.5, 1.0),
        4,
        f"the classical Runge–Kutta method ({_HNW}, eq. (1.9))",
    ),
}
# Crouch & Grossman (1993), the three-stage method of order 3 (Hairer, Lubich & Wanner,
# *Geometric Numerical Integration*, Sec. IV.8.1, eq. (8.5) and its coefficients).
_CG3_TABLEAU = LieTableau(
    ((0.0, 0.0, 0.0), (3 / 4, 0.0, 0.0), (119 / 216, 17 / 108, 0.0)),
    (13 / 51, -2 / 3, 24 / 17),
    (0.0, 3 / 4, 17 / 24),
    3,
    "Crouch & Grossman 1993, 3 stages, order 3 (HLW GNI IV.8.1)",
)
EXPS = ("auto", "rodrigues", "expm", "cayley")


def _bracket(a, b):
    return a @ b - b @ a


def rodrigues(w: Float[Array, "*batch 3 3"]) -> Float[Array, "*batch 3 3"]:
    """$\\exp(W)$ for a 3 x 3 skew-symmetric $W$: $I + \\frac{\\sin\\theta}{\\theta}W +
    \\frac{1 - \\cos\\theta}{\\theta^2}W^2$ (Rodrigues' formula), with Taylor series of both
    coefficients below $\\theta = 10^{-3}$, so that it and its derivatives are accurate at
    $W = 0$.

    **Arguments:**

    - `w`: skew-symmetric matrices, shape `(..., 3, 3)`, floating.

    **Returns:** the rotations $\\exp(W)$, shape `(..., 3, 3)`, in `w`'s dtype.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> w = jnp.array([[0.0, -0.3, 0.2], [0.3, 0.0, -0.1], [-0.2, 0.1, 0.0]])
    >>> r = si.rodrigues(w)
    >>> eye = jnp.eye(3)
    >>> bool(jnp.allclose(r.T @ r, eye, atol=1e-14))  # a rotation
    True
    >>> bool(jnp.allclose(r @ si.rodrigues(-w), eye, atol=1e-14))  # exp(-W) = exp(W)^-1
    True

    ```
    """
    theta2 = 0.5 * jnp.sum(w * w, axis=(-2, -1))  # |omega|^2 for W = hat(omega)
    small = theta2 < 1e-6
    t2 = jnp.where(small, jnp.ones_like(theta2), theta2)
    theta = jnp.sqrt(t2)
    a = jnp.where(small, 1 - theta2 / 6 + theta2**2 / 120, jnp.sin(theta) / theta)
    b = jnp.where(small, 0.5 - theta2 / 24 + theta2**2 / 720, (1 - jnp.cos(theta)) / t2)
    eye = jnp.eye(3, dtype=w.dtype)
    return eye + a[..., None, None] * w + b[..., None, None] * (w @ w)


def cayley_map(w: Inexact[Array, "*batch n n"]) -> Inexact[Array, "*batch n n"]:
    """$\\mathrm{cay}(W) = (I - W/2)^{-1}(I + W/2)$: orthogonal for skew $W$ (quadratic
    groups only), no series, one linear solve (structjax's one Cayley convention, HLW GNI
    eq. (IV.8.10)).

    **Arguments:**

    - `w`: square matrices, shape `(..., n, n)` (skew for an orthogonal result).

    **Returns:** $\\mathrm{cay}(W)$, shape `(..., n, n)`, in `w`'s dtype.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> w = jnp.array([[0.0, -2.0], [2.0, 0.0]])
    >>> c = si.cayley_map(w)
    >>> bool(jnp.allclose(c.T @ c, jnp.eye(2), atol=1e-14))
    True

    ```
    """
    return cayley(w)


class LieGroupRK(AbstractStructuredSolver):
    """The base of the Lie-group Runge–Kutta methods, for $\\dot Y = A(t, Y)\\,Y$ (left
    action), the term's vector field returning the algebra element $A(t, Y)$ (a square
    matrix; a pytree of them for a pytree of $Y$s, each acted on by its own, as for a product
    group). $Y$ is a group element (SO(n), SE(3), ...) or a point of a homogeneous space acted
    on by the group (the sphere in $\\mathbb{R}^3$ by SO(3), the Stiefel manifold by SO(n)).
    $Y$ stays on its group (or space) to rounding, whatever the step.

    A family is one class over a `LieTableau`: `RKMK` (Runge–Kutta–Munthe-Kaas, any explicit
    RK table in the algebra) and `CrouchGrossman` (products of exponentials; `CrouchGrossman3`
    the 3-stage order-3 method). `isinstance(solver, LieGroupRK)` holds for all of them.

    **Common arguments:**

    - `exp`: `"auto"` (Rodrigues' formula for 3 x 3, `expm` otherwise), `"rodrigues"`,
      `"expm"` (`jax.scipy.linalg.expm`, Padé with scaling and squaring) or `"cayley"`
      (quadratic groups such as SO(n) only; RKMK only).
    - `group`: optional, the group (or homogeneous space) the state lives on, in the
      vocabulary the certificates and the equivariant layers share: a
      `structjax.equivariant.Group` with an invariant form (`SO(3)`, `SE(3)`, `O(n)`,
      `LorentzGroup()`, ...), a `structjax.manifolds` manifold (`Stiefel(n, p)`,
      `SpecialOrthogonal(n)`, ...) or one of the spellings `"SO"`, `"O"`, `"SE"`,
      `"Stiefel"`. Then `init` refuses a state more than 1e-8 (1e-4 in float32,
      `10 eps sqrt(size)` in 16-bit floats) off that group (`check.lie_group_error`): a
      `ValueError` from an eager `init`, a run-time error (`jax.errors.JaxRuntimeError`)
      from a compiled solve (`solve_fixed`, `diffeqsolve`, `jax.jit`); every state leaf is
      then a matrix of that group.

    **Raises:** `ValueError`, at trace time, for a vector field whose algebra element is not
    a square matrix acting on its state leaf (`A` of shape `(n, n)` for `y` of shape `(n,)` or
    `(n, k)`, leading axes broadcasting) or not the state's pytree structure, and for
    `exp="rodrigues"` on an algebra other than 3 x 3. Dense output is linear between steps.

    **Example:**

    ```pycon
    >>> import diffrax, jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> from structjax.check import lie_group_error
    >>> term = diffrax.ODETerm(lambda t, y, args: jnp.array([[0.0, -1.0], [1.0, 0.0]]))
    >>> solvers = [si.RKMK(2), si.CrouchGrossman3()]
    >>> ys = [s.one_step(term, 0.0, 1.0, jnp.eye(2)) for s in solvers]
    >>> [bool(lie_group_error("SO", y) < 1e-14) for y in ys]
    [True, True]

    ```
    """

    steps_can_fail: ClassVar[bool] = False  # explicit stages: a step cannot fail

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., diffrax.AbstractLocalInterpolation]] = (
        diffrax.LocalLinearInterpolation
    )
    tableau: AbstractVar[LieTableau]
    exp: AbstractVar[str]
    group: AbstractVar[object]  # None, a Group, a manifold or a string spelling

    def __check_init__(self):
        if not isinstance(self.tableau, LieTableau):
            raise TypeError(
                f"`{type(self).__name__}` needs a `LieTableau`, got {type(self.tableau).__name__}."
            )
        if self.exp not in EXPS:
            raise ValueError(f"`{self._call}` needs `exp` one of {EXPS}, got {self.exp!r}.")
        if self.group is not None:
            check_group(self.group, f"{self._call}(group=...)")

    @property
    def _group_repr(self) -> str:
        g = self.group
        return repr(g) if isinstance(g, str) else group_name(g) if isinstance(g, Group) else (
            repr(g).replace("\n", "").replace("  ", ""))  # fmt: skip

    @property
    @abc.abstractmethod
    def _call(self) -> str:
        """How the user built it, for messages: `RKMK(4)`, `CrouchGrossman3(exp='expm')`."""

    @property
    def _options(self) -> str:
        return "" if self.exp == "auto" else f"exp={self.exp!r}"

    @abc.abstractmethod
    def _update(self, terms, t0, h, hy, y0, args):
        """The new state after a step of length `h` (real time `hy`, the control)."""

    def order(self, terms: PyTree) -> int:
        return self.tableau.order

    def _exp(self, w):
        if self.exp == "cayley":
            return cayley_map(w)
        if self.exp == "rodrigues" or (self.exp == "auto" and w.shape[-2:] == (3, 3)):
            if w.shape[-2:] != (3, 3):
                raise ValueError(
                    f"`{self._call}`: `exp='rodrigues'` is for 3 x 3 algebras (so(3)), got an "
                    f"algebra element of shape {w.shape}; use exp='auto' or 'expm'."
                )
            return rodrigues(w)
        return expm(w)  # full-precision products (see `structjax._linalg.expm`)

    def _algebra(self, terms, t, y, args):
        # The raw vector field: ODETerm.vf would broadcast the algebra element to y's shape.
        # Under `diffeqsolve` the term is wrapped (`WrapTerm`), its time reversed for
        # a backward solve: the field is evaluated at the real time t * direction.
        if isinstance(terms, WrapTerm):
            t, terms = t * terms.direction, terms.term
        a = terms.vector_field(t, y, args)  # pyright: ignore[reportAttributeAccessIssue]  (ODETerm)
        self._check_algebra(a, y)
        return a

    def _check_algebra(self, a, y):
        """At trace time: `a` is one square matrix per state leaf, acting on it."""
        if jtu.tree_structure(a) != jtu.tree_structure(y):
            raise ValueError(
                f"`{self._call}` needs the vector field to return the Lie-algebra element "
                f"A(t, y) of y' = A y with the state's structure {jtu.tree_structure(y)} (one "
                f"square matrix per leaf), got {jtu.tree_structure(a)}."
            )
        for (path, m), v in zip(jtu.tree_leaves_with_path(a), jtu.tree_leaves(y)):
            ms, vs = jnp.shape(m), jnp.shape(v)
            n = vs[-1] if len(vs) == 1 else (vs[-2] if vs else None)
            fits = n is not None and len(ms) >= 2 and ms[-2:] == (n, n)
            if fits and len(vs) == 1:
                fits = len(ms) == 2
            elif fits:
                try:
                    fits = jnp.broadcast_shapes(ms[:-2], vs[:-2]) == vs[:-2]
                except ValueError:
                    fits = False
            if not fits:
                where = f" at y{jtu.keystr(path)}" if path else ""
                expected = f"({n}, {n})" if n is not None else "(n, n) for a state (n,) or (n, k)"
                raise ValueError(
                    f"`{self._call}` needs the vector field to return the Lie-algebra element "
                    f"A(t, y) of y' = A y: a square matrix of shape {expected} acting on the "
                    f"state{where} of shape {vs}, got shape {ms}."
                )

    def init(
        self, terms: PyTree, t0: ArrayLike, t1: ArrayLike, y0: PyTree[ArrayLike], args: PyTree
    ) -> Array | None:
        base = terms.term if isinstance(terms, WrapTerm) else terms
        if type(base) is not diffrax.ODETerm:
            raise ValueError(
                f"`{self._call}` takes one `diffrax.ODETerm` whose vector field returns "
                f"the Lie-algebra element A(t, y) of y' = A y, got {type(terms).__name__}."
            )
        if self.group is None:
            return None
        leaves = jtu.tree_leaves(y0)
        group, named = self.group, self._group_repr
        for y in leaves:
            shape = jnp.shape(y)
            if isinstance(group, str):
                square = len(shape) >= 2 and shape[-1] == shape[-2]
                fits = len(shape) >= 2 and (square or (group == "Stiefel"
                                                       and shape[-2] >= shape[-1]))  # fmt: skip
                kind = "tall" if group == "Stiefel" else "square"
            elif isinstance(group, Group):
                fits, kind = len(shape) >= 2 and shape[-2:] == (group.d, group.d), (
                    f"{group.d} x {group.d}")  # fmt: skip
            else:  # a manifold: its own shape check, under this call's name
                try:
                    group.check_shape(y)  # pyright: ignore[reportAttributeAccessIssue]  (manifold)
                    fits = True
                except ValueError as e:
                    raise ValueError(f"`{self._call}` with group={named}: {e}") from None
            if not fits:
                raise ValueError(
                    f"`{self._call}` with group={named} needs every leaf of `y0` to be "
                    f"a {kind} matrix of the group, got shape {shape}."
                )
        # `group` is an AbstractVar whose concrete types (Group, manifold, name) pyright cannot see.
        group = self.group
        err = jnp.max(jnp.stack([jnp.max(lie_group_error(group, y)) for y in leaves]))  # pyright: ignore[reportArgumentType]
        dtype = jnp.result_type(*leaves)
        tol = point_tolerance(dtype, max(jnp.size(y) for y in leaves))
        where = group_name(group)
        message = (
            f"`{self._call}` with group={named} needs `y0` on {where}: it is off "
            f"{where} by more than {tol:g} (check.lie_group_error); project it onto the "
            "group first."
        )
        # Under a trace the check runs with the program: the state carries it (see `step`).
        return guard(jnp.zeros((), dtype), err > tol, message, found=err)

    def _act(self, g, y):
        return jtu.tree_map(lambda m, v: (m @ v).astype(v.dtype), g, y)

    def step(
        self,
        terms: PyTree[diffrax.AbstractTerm],
        t0: ArrayLike,
        t1: ArrayLike,
        y0: PyTree[ArrayLike],
        args: PyTree,
        solver_state: Array | None,
        made_jump: ArrayLike,
    ) -> tuple[PyTree, None, dict[str, PyTree], Array | None, diffrax.RESULTS]:
        dtype = jnp.result_type(*jtu.tree_leaves(y0))
        # The step in real time is the term's control (-h for diffeqsolve's backward solves,
        # which run in negated time through a `WrapTerm`), as diffrax's own solvers take it.
        hy = jnp.asarray(terms.contr(t0, t1)).astype(dtype)
        h = t1 - t0  # pyright: ignore[reportOperatorIssue]  (times: numbers or arrays)
        y1 = self._update(terms, t0, h, hy, y0, args)
        if solver_state is not None:  # keep `init`'s check alive in a compiled program
            y1 = jtu.tree_map(lambda v: v + jnp.zeros((), v.dtype) * solver_state, y1)
        return y1, None, dict(y0=y0, y1=y1), solver_state, diffrax.RESULTS.successful

    def _exp_tree(self, w):
        return jtu.tree_map(self._exp, w)

    def func(
        self,
        terms: PyTree[diffrax.AbstractTerm],
        t0: ArrayLike,
        y0: PyTree[ArrayLike],
        args: PyTree,
    ) -> PyTree[Array]:
        return self._act(self._algebra(terms, t0, y0, args), y0)

    def one_step(
        self,
        terms: PyTree[diffrax.AbstractTerm],
        t0: ArrayLike,
        h: ArrayLike,
        y0: PyTree[ArrayLike],
        args: PyTree = None,
    ) -> PyTree[Array]:
        """One step of size `h` from `(t0, y0)`, as a pure function."""
        return self.step(terms, t0, t0 + h, y0, args, None, False)[0]


class RKMK(LieGroupRK):
    """The Runge–Kutta–Munthe-Kaas method (Munthe-Kaas 1999; Iserles, Munthe-Kaas, Nørsett &
    Zanna 2000, Acta Numerica, Sec. 5; HLW GNI IV.8.2): an explicit RK method of order p in
    the algebra, $\\Theta_i = \\sum_j a_{ij}K_j$,
    $K_i = h\\,\\mathrm{dexp}^{-1}_{\\Theta_i}A(t_0 + c_ih, \\exp(\\Theta_i)Y_0)$,
    $Y_1 = \\exp(\\sum_i b_iK_i)Y_0$, with $\\mathrm{dexp}^{-1}_\\Omega = \\sum_k
    \\frac{B_k}{k!}\\mathrm{ad}_\\Omega^k$ truncated after $k = p - 2$ (Munthe-Kaas 1999:
    enough for order p). With `exp="cayley"` it is the Cayley-RKMK method, using the exact
    $\\mathrm{dcay}^{-1}_\\Omega X = X - \\frac12[\\Omega, X] - \\frac14\\Omega X\\Omega$
    (Iserles 2001, "On Cayley-transform methods for the discretization of Lie-group
    equations").

    **Arguments:**

    - `order`: 1 to 4, picking a classical explicit RK table (Euler, midpoint, Kutta 3,
        RK4); default 4.
    - `exp`, `group`: see `LieGroupRK`.
    - `tableau`: instead of `order`, any explicit RK `LieTableau` (its order up to 4: the
        dexp^-1 series is cut for it).

    **Raises:** `ValueError` for an order other than 1 to 4, a tableau of order above 4, or
    both `order` and a `tableau` of another order; see also `LieGroupRK`.

    **Example:**

    ```pycon
    >>> import diffrax, jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> from structjax.check import lie_group_error
    >>> omega = jnp.array([[0.0, -1.0, 0.3], [1.0, 0.0, -0.2], [-0.3, 0.2, 0.0]])
    >>> term = diffrax.ODETerm(lambda t, y, args: omega)  # y' = omega y on SO(3)
    >>> y1 = si.RKMK(4).one_step(term, 0.0, 0.5, jnp.eye(3))
    >>> bool(lie_group_error("SO", y1) < 1e-14)
    True

    ```
    """

    tableau: LieTableau = eqx.field(static=True)
    exp: str = eqx.field(static=True)
    group: object = eqx.field(static=True)

    def __init__(
        self,
        order: int | None = None,
        exp: str = "auto",
        group: object = None,
        *,
        tableau: LieTableau | None = None,
    ):
        if tableau is None:
            order = 4 if order is None else order
            if isinstance(order, bool) or order not in _RK_TABLEAUX:
                raise ValueError(f"`RKMK(order={order!r})` needs order 1, 2, 3 or 4.")
            tableau = _RK_TABLEAUX[order]
        elif isinstance(tableau, LieTableau):
            if tableau.order > 4:
                raise ValueError(
                    f"`RKMK(tableau=...)` handles orders up to 4 (its dexp^-1 series is cut "
                    f"there), got a table of order {tableau.order}."
                )
            if order is not None and order != tableau.order:
                raise ValueError(
                    f"`RKMK(order={order!r}, tableau=...)`: the tableau has order "
                    f"{tableau.order}; pass one of the two."
                )
        self.tableau, self.exp, self.group = tableau, exp, group

    @property
    def _call(self) -> str:
        opts = self._options
        return f"RKMK({self.tableau.order}{', ' + opts if opts else ''})"

    def _dexpinv(self, omega, x):
        if self.exp == "cayley":
            return x - 0.5 * _bracket(omega, x) - 0.25 * omega @ x @ omega
        out, ad = x, x
        # Bernoulli numbers B_k / k!: 1, -1/2, 1/12, 0, -1/720 (terms k = 0 .. p - 2)
        coeffs = (-0.5, 1 / 12, 0.0, -1 / 720)
        for k in range(1, self.tableau.order - 1):
            ad = _bracket(omega, ad)
            if coeffs[k - 1]:
                out = out + coeffs[k - 1] * ad
        return out

    def _update(self, terms, t0, h, hy, y0, args):
        a, b, c = self.tableau.a, self.tableau.b, self.tableau.c
        s = len(b)
        ks = []
        for i in range(s):
            theta = None
            for j in range(i):
                if a[i][j]:
                    term = jtu.tree_map(lambda k: a[i][j] * k, ks[j])
                    theta = term if theta is None else jtu.tree_map(jnp.add, theta, term)
            yi = y0 if theta is None else self._act(self._exp_tree(theta), y0)
            ai = self._algebra(terms, t0 + c[i] * h, yi, args)
            ki = jtu.tree_map(lambda x: hy * x, ai)
            if theta is not None:
                ki = jtu.tree_map(self._dexpinv, theta, ki)
            ks.append(ki)
        big = jtu.tree_map(lambda *k: sum(bi * ki for bi, ki in zip(b, k) if bi), *ks)
        y1 = self._act(self._exp_tree(big), y0)
        return y1


class CrouchGrossman(LieGroupRK):
    """A Crouch–Grossman method (Crouch & Grossman 1993; HLW GNI IV.8.1):
    $Y_i = \\exp(ha_{i,i-1}F_{i-1})\\cdots\\exp(ha_{i1}F_1)Y_0$, $F_i = A(t_0 + c_ih, Y_i)$,
    $Y_1 = \\exp(hb_sF_s)\\cdots\\exp(hb_1F_1)Y_0$: products of exponentials, no
    commutators. Its coefficients satisfy order conditions of their own (Owren & Marthinsen
    1999), not those of the RK table with the same entries.

    **Arguments:** `tableau` (a `LieTableau` of Crouch–Grossman coefficients); `exp` (not
    `"cayley"`: the coefficients assume the exponential) and `group`: see `LieGroupRK`.

    **Example:**

    ```pycon
    >>> import diffrax, jax.numpy as jnp
    >>> import structjax.integrators as si
    >>> from structjax.check import lie_group_error
    >>> cg3 = si.CrouchGrossman(si.CrouchGrossman3().tableau)  # the same coefficients
    >>> term = diffrax.ODETerm(lambda t, y, args: jnp.array(
    ...     [[0.0, -1.0, t], [1.0, 0.0, 0.0], [-t, 0.0, 0.0]]))  # time-dependent so(3)
    >>> y1 = cg3.one_step(term, 0.0, 0.3, jnp.eye(3))
    >>> bool(lie_group_error("SO", y1) < 1e-14), isinstance(cg3, si.LieGroupRK)
    (True, True)

    ```
    """

    tableau: LieTableau = eqx.field(static=True)
    exp: str = eqx.field(static=True)
    group: object = eqx.field(static=True)

    def __init__(self, tableau: LieTableau, exp: str = "auto", group: object = None):
        self.tableau, self.exp, self.group = tableau, exp, group

    def __check_init__(self):
        if self.exp == "cayley":
            raise ValueError(
                f"`{self._call}`: `exp='cayley'` needs RKMK (its dcay^-1 is exact); "
                "Crouch–Grossman coefficients assume the exponential."
            )

    @property
    def _call(self) -> str:
        return f"CrouchGrossman(tableau, {self._options})" if self._options else (
            "CrouchGrossman(tableau)")  # fmt: skip

    def _update(self, terms, t0, h, hy, y0, args):
        a, b, c = self.tableau.a, self.tableau.b, self.tableau.c
        s = len(b)
        fs = []
        for i in range(s):
            yi = y0
            for j in range(i):
                yi = self._act(self._exp_tree(jtu.tree_map(lambda f: hy * a[i][j] * f, fs[j])), yi)
            fs.append(self._algebra(terms, t0 + c[i] * h, yi, args))
        # The product of the s exponentials first (small matrices), then one action on
        # y0: one rounding of y per step rather than s, so y drifts off the group less.
        g = None
        for i in range(s):
            e = self._exp_tree(jtu.tree_map(lambda f: hy * b[i] * f, fs[i]))
            g = e if g is None else jtu.tree_map(lambda x, y: x @ y, e, g)
        y1 = self._act(g, y0)
        return y1


class CrouchGrossman3(CrouchGrossman):
    """The 3-stage, order-3 Crouch–Grossman method (`_CG3_TABLEAU`, Crouch & Grossman 1993).

    **Arguments:** `exp`, `group`: see `LieGroupRK`.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> si.CrouchGrossman3(exp="expm").order(None)
    3

    ```
    """

    def __init__(self, exp: str = "auto", group: object = None):
        super().__init__(_CG3_TABLEAU, exp, group)

    @property
    def _call(self) -> str:
        return f"CrouchGrossman3({self._options})"
