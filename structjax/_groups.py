"""Matrix groups, described as EMLP does (Finzi, Welling & Wilson 2021, "A practical method
for constructing equivariant multilayer perceptrons for arbitrary matrix groups", Sec. 4):
by Lie-algebra generators $A_k$ (the continuous part) and discrete generators $h_j$, as
matrices of the defining representation on $\\mathbb R^d$. A group element is its $d \\times d$
matrix in that representation.
"""

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from ._guards import check_real_floating, compute_dtype, is_traced, static_int
from ._linalg import expm as _expm, mm, mT


def _rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _so_generators(n: int) -> np.ndarray:
    """The basis $E_{ij} - E_{ji}$, $i < j$, of $\\mathfrak{so}(n)$."""
    gens = []
    for i in range(n):
        for j in range(i + 1, n):
            a = np.zeros((n, n))
            a[i, j], a[j, i] = -1.0, 1.0
            gens.append(a)
    return np.stack(gens) if gens else np.zeros((0, n, n))


def _reflection(n: int) -> np.ndarray:
    r = np.eye(n)
    r[0, 0] = -1.0
    return r


def form_error(y, form, special: bool = False, affine: bool = False):
    """How far the matrices `y` (leading axes batch) are from the group that keeps the
    bilinear `form` $M$ ($Y^\\top M Y = M$): $\\|Y^\\top M Y - M\\|_F$, plus $|\\det Y - 1|$
    for a `special` group, and for an `affine` one (homogeneous matrices
    $\\begin{pmatrix} R & t \\\\ 0 & 1 \\end{pmatrix}$) the form applied to $R$ plus the
    distance of the last row from $(0, \\dots, 0, 1)$. One number per matrix. With `form`
    the identity and `y` tall, the Stiefel error $\\|Y^\\top Y - I\\|_F$."""
    y = jnp.asarray(y)
    err = 0.0
    if affine:
        n = y.shape[-1]
        last = jnp.zeros(n, y.dtype).at[-1].set(1.0)
        err = jnp.linalg.norm(y[..., -1, :] - last, axis=-1)
        y = y[..., :-1, :-1]
    m = jnp.asarray(form, y.dtype)
    err = err + jnp.linalg.norm(mm(mT(y), mm(m, y)) - m, axis=(-2, -1))
    if special:
        err = err + jnp.abs(jnp.linalg.det(y) - 1)
    return err


class Frozen:
    """A numpy array as hashable static data (hashed by shape and bytes): the generators of a
    group are part of its identity, so a representation pair is a cache key. It holds its own
    read-only float64 copy: the caller's array is never aliased nor made read-only."""

    __slots__ = ("array", "_hash")

    def __init__(self, array, call: str = "Frozen", name: str = "array"):
        if is_traced(array):
            raise TypeError(
                f"`{call}` needs concrete `{name}` (static data: NumPy arrays or nested "
                "lists), got a traced array; build groups outside `jax.jit`."
            )
        if np.iscomplexobj(array):
            raise TypeError(
                f"`{call}` needs real `{name}` (matrices of a real representation), got a "
                f"complex array."
            )
        self.array = np.array(array, dtype=np.float64, copy=True)
        if not np.all(np.isfinite(self.array)):
            raise ValueError(f"`{call}` needs finite `{name}`, got NaN or infinite entries.")
        self.array.setflags(write=False)
        self._hash = hash((self.array.shape, self.array.tobytes()))

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return (
            isinstance(other, Frozen)
            and self._hash == other._hash
            and np.array_equal(self.array, other.array)
        )

    def __repr__(self):
        return f"Frozen(shape={self.array.shape})"


class Group(eqx.Module):
    r"""A matrix group from its generators, in the defining representation on $\mathbb R^d$.

    The group is described as EMLP describes it (Finzi, Welling & Wilson 2021, Sec. 4): the
    Lie-algebra generators $A_k$ span its identity component $\exp(\sum_k c_k A_k)$ and the
    discrete generators $h_j$ reach its other components (or, for a finite group, all of it).
    An element is its $d \times d$ matrix.

    **Arguments:**

    - `lie_algebra`: `(k, d, d)`, a basis of the Lie algebra (`(0, d, d)` for a finite
        group); NumPy arrays or nested lists, real and finite.
    - `discrete_generators`: `(m, d, d)`, elements that with the identity component generate
        the group (`(0, d, d)` for a connected group).
    - `name`: for messages.
    - `order`: for a finite group, its order $|G|$ (an int >= 1), else None.
    - `form`, `special`, `affine` (keywords): how membership is measured, for a Lie group
        that keeps a bilinear form $M$ ($g^\top M g = M$: the identity for O(n), $\eta$ for
        the Lorentz group, $J$ for Sp(2n)), with $\det g = 1$ if `special`, on homogeneous
        matrices if `affine` (E(n), SE(n)). `membership_error` and `check.lie_group_error`
        use them; a group without a form (the finite ones) refuses them.

    Use the constructors `C`, `D`, `S`, `SO`, `O`, `Lorentz`, `Sp`, `E`, or build your own
    group from its generators: anything `equivariant_basis` needs is here. The generators are
    copied (the caller's arrays are left as they were).

    **Raises:** `ValueError` for generators that are not `(k, d, d)`, act on different spaces,
    are all absent or are not finite, and for an `order` below 1; `TypeError` for traced or
    complex generators, or a non-integer `order`.

    **Example:**

    ```pycon
    >>> import jax, numpy as np
    >>> from structjax.equivariant import Group
    >>> flip = Group(np.zeros((0, 2, 2)), np.diag([-1.0, 1.0])[None], "Z2", order=2)
    >>> g = flip.sample(jax.random.key(0))
    >>> print(flip.d, flip.order, bool(np.allclose(g @ g, np.eye(2))))
    2 2 True

    ```
    """

    _lie_algebra: Frozen = eqx.field(static=True)
    _discrete: Frozen = eqx.field(static=True)
    name: str = eqx.field(static=True)
    order: int | None = eqx.field(static=True)  # finite groups: |G|
    _form: Frozen | None = eqx.field(static=True)
    special: bool = eqx.field(static=True)
    affine: bool = eqx.field(static=True)

    def __init__(
        self,
        lie_algebra: ArrayLike | Sequence,
        discrete_generators: ArrayLike | Sequence,
        name: str = "G",
        order: int | float | None = None,
        *,
        form: ArrayLike | Sequence | None = None,
        special: bool = False,
        affine: bool = False,
    ):
        call = f"Group(name={name!r})"
        self._lie_algebra = Frozen(lie_algebra, call, "lie_algebra")
        self._discrete = Frozen(discrete_generators, call, "discrete_generators")
        if order is not None:
            order = static_int(order, f"Group(name={name!r}, order={order!r})", "order")
        self.name, self.order = str(name), order
        self._form = None if form is None else Frozen(form, call, "form")
        self.special, self.affine = bool(special), bool(affine)

    @property
    def lie_algebra(self) -> np.ndarray:
        """The Lie-algebra basis, `(k, d, d)` float64 (read-only)."""
        return self._lie_algebra.array

    @property
    def discrete_generators(self) -> np.ndarray:
        """The discrete generators, `(m, d, d)` float64 (read-only)."""
        return self._discrete.array

    def __check_init__(self):
        for field in ("lie_algebra", "discrete_generators"):
            a = getattr(self, field)
            if a.ndim != 3 or a.shape[1] != a.shape[2]:
                raise ValueError(
                    f"`Group({self.name})`: `{field}` must have shape (k, d, d), got {a.shape}."
                )
        if self.lie_algebra.shape[0] + self.discrete_generators.shape[0] == 0:
            raise ValueError(
                f"`Group({self.name})` has no generators: give Lie-algebra generators, discrete "
                "generators or both (the trivial group has no equivariance constraint to solve)."
            )
        if self._form is not None:
            k = self.d - 1 if self.affine else self.d
            if self._form.array.shape != (k, k):
                raise ValueError(
                    f"`Group({self.name})`: `form` must be {k} x {k} (the "
                    f"{'linear block of the ' if self.affine else ''}defining representation), "
                    f"got {self._form.array.shape}."
                )
        if self.lie_algebra.shape[1:] != self.discrete_generators.shape[1:] and (
            self.lie_algebra.shape[0] and self.discrete_generators.shape[0]
        ):
            raise ValueError(
                f"`Group({self.name})`: Lie-algebra generators {self.lie_algebra.shape} and "
                f"discrete generators {self.discrete_generators.shape} act on different spaces."
            )

    @property
    def form(self) -> np.ndarray | None:
        """The bilinear form the group keeps (None if none is declared)."""
        return None if self._form is None else self._form.array

    def membership_error(self, g: ArrayLike) -> Array:
        r"""How far the $d \times d$ matrices `g` are from the group, one number per matrix
        (zero on it): $\|g^\top M g - M\|_F$ for the group's form $M$, plus
        $|\det g - 1|$ if `special`; for an `affine` group the form on the linear block plus
        the distance of the last row from $(0, \dots, 0, 1)$.

        **Arguments:**

        - `g`: `(..., d, d)`, leading axes batch.

        **Returns:** the error of each matrix, shape `g.shape[:-2]`.

        **Raises:** `ValueError` for matrices that are not $d \times d$, or for a group
        that declares no invariant form (a finite group: membership of a finite set is not
        a distance to a manifold)."""
        if self._form is None:
            raise ValueError(
                f"`{self.name}.membership_error`: the group declares no invariant form (a "
                "finite group, or one built without `form=`), so there is no distance to it "
                "to measure; give `Group(..., form=M)` for a group keeping g^T M g = M."
            )
        shape = jnp.shape(g)
        if len(shape) < 2 or shape[-2:] != (self.d, self.d):
            raise ValueError(
                f"`{self.name}.membership_error` needs {self.d} x {self.d} matrices (leading "
                f"axes batch), got shape {shape}."
            )
        return form_error(g, self._form.array, self.special, self.affine)

    @property
    def d(self) -> int:
        """The dimension of the defining representation."""
        gens = self.lie_algebra if self.lie_algebra.shape[0] else self.discrete_generators
        return gens.shape[-1]

    def identity(self, dtype: DTypeLike | None = None) -> Float[Array, "d d"]:
        """The identity element, the $d \\times d$ identity matrix of `dtype`."""
        return jnp.eye(self.d, dtype=dtype)

    def compose(self, g: Array, h: Array) -> Array:
        """$gh$ (matrix product) of two elements `(..., d, d)`."""
        return g @ h

    def inverse(self, g: Array) -> Array:
        """$g^{-1}$ (matrix inverse) of an element `(..., d, d)`."""
        return jnp.linalg.inv(g)

    def sample(self, key: PRNGKeyArray, dtype: DTypeLike | None = None) -> Float[Array, "d d"]:
        r"""A random element: $\exp(\sum_k c_k A_k)\,h$ with $c \sim N(0, 1)$ and $h$ a
        random word of length up to 8 in the discrete generators (for a finite group, a word of
        length up to twice its order, which reaches every element).

        **Arguments:**

        - `key`: a PRNG key.
        - `dtype`: a real floating dtype (default: JAX's default float); 16-bit dtypes are
            drawn in float32 and rounded.

        **Returns:** a `(d, d)` matrix of `dtype`.

        **Raises:** `TypeError` for a dtype that is not real floating (trace time)."""
        dtype = jnp.dtype(dtype or jnp.result_type(float))
        check_real_floating(jnp.zeros((), dtype), f"{self.name}.sample(key, dtype)", "dtype")
        out_dtype, dtype = dtype, compute_dtype(dtype)  # 16-bit: drawn in float32, rounded
        k_alg, k_len, k_word = jax.random.split(key, 3)
        g = jnp.eye(self.d, dtype=dtype)
        if self.lie_algebra.shape[0]:
            c = jax.random.normal(k_alg, (self.lie_algebra.shape[0],), dtype)
            g = _expm(jnp.einsum("k,kij->ij", c, jnp.asarray(self.lie_algebra, dtype)))
        m = self.discrete_generators.shape[0]
        if m:
            max_len = 8 if self.order is None else 2 * self.order
            gens = jnp.asarray(self.discrete_generators, dtype)
            length = jax.random.randint(k_len, (), 0, max_len + 1)
            picks = jax.random.randint(k_word, (max_len,), 0, m)

            def step(i, h):
                return jnp.where(i < length, h @ gens[picks[i]], h)

            g = g @ jax.lax.fori_loop(0, max_len, step, jnp.eye(self.d, dtype=dtype))
        return g.astype(out_dtype)


def C(n: int) -> Group:
    r"""The cyclic group $C_n$: rotations of the plane by multiples of $2\pi/n$, a finite
    group of order $n$ in EMLP's description (Finzi, Welling & Wilson 2021, Sec. 4).

    **Arguments:**

    - `n`: the order, an int >= 1.

    **Returns:** a `Group`.

    **Raises:** `ValueError` for an `n` below 1 (`TypeError` for a non-integer `n`).

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> from structjax.equivariant import C
    >>> g = C(4).sample(jax.random.key(0))  # a rotation by a multiple of pi/2
    >>> print(C(4).order, bool(jnp.allclose(jnp.linalg.matrix_power(g, 4), jnp.eye(2))))
    4 True

    ```
    """
    n = static_int(n, f"C({n!r})", "n", minimum=1)
    return Group(np.zeros((0, 2, 2)), _rotation(2 * math.pi / n)[None], f"C({n})", n)


def D(n: int) -> Group:
    """The dihedral group $D_n$ (order $2n$): the rotations of $C_n$ and a reflection of the
    plane, as discrete generators.

    **Arguments:**

    - `n`: the number of rotations, an int >= 1.

    **Returns:** a `Group`.

    **Raises:** `ValueError` for an `n` below 1 (`TypeError` for a non-integer `n`).

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> from structjax.equivariant import D
    >>> g = D(3).sample(jax.random.key(0))  # every element's order divides 6
    >>> print(D(3).order, bool(jnp.allclose(jnp.linalg.matrix_power(g, 6), jnp.eye(2))))
    6 True

    ```
    """
    n = static_int(n, f"D({n!r})", "n", minimum=1)
    gens = np.stack([_rotation(2 * math.pi / n), _reflection(2)])
    return Group(np.zeros((0, 2, 2)), gens, f"D({n})", 2 * n)


def S(n: int) -> Group:
    r"""The symmetric group $S_n$ (order $n!$) as permutation matrices, generated by the
    transposition $(1\,2)$ and the cycle $(1\,2 \dots n)$.

    **Arguments:**

    - `n`: the number of points permuted, an int >= 2.

    **Returns:** a `Group`.

    **Raises:** `ValueError` for an `n` below 2 (`TypeError` for a non-integer `n`).

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> from structjax.equivariant import S
    >>> g = S(4).sample(jax.random.key(0))
    >>> print(S(4).order, bool(jnp.all(jnp.sort(g, axis=0)[:-1] == 0) & jnp.all(g.sum(0) == 1)))
    24 True

    ```
    """
    n = static_int(n, f"S({n!r})", "n", minimum=2)
    swap = np.eye(n)[[1, 0] + list(range(2, n))]
    cycle = np.roll(np.eye(n), 1, axis=0)
    return Group(np.zeros((0, n, n)), np.stack([swap, cycle]), f"S({n})", math.factorial(n))


def SO(n: int) -> Group:
    r"""The rotation group $SO(n)$ of $\mathbb R^n$: $g^\top g = I$, $\det g = 1$, with the
    Lie algebra spanned by $E_{ij} - E_{ji}$, $i < j$.

    **Arguments:**

    - `n`: the dimension, an int >= 2.

    **Returns:** a `Group`.

    **Raises:** `ValueError` for an `n` below 2 (`TypeError` for a non-integer `n`).

    **Example:**

    ```pycon
    >>> import jax
    >>> from structjax.equivariant import SO
    >>> g = SO(3).sample(jax.random.key(0))
    >>> print(g.shape, bool(SO(3).membership_error(g) < 1e-12))
    (3, 3) True

    ```
    """
    n = static_int(n, f"SO({n!r})", "n", minimum=2)
    return Group(_so_generators(n), np.zeros((0, n, n)), f"SO({n})", form=np.eye(n),
                 special=True)  # fmt: skip


def O(n: int) -> Group:  # noqa: E743
    r"""The orthogonal group $O(n)$ of $\mathbb R^n$ ($g^\top g = I$): $SO(n)$ and a
    reflection as a discrete generator.

    **Arguments:**

    - `n`: the dimension, an int >= 1.

    **Returns:** a `Group`.

    **Raises:** `ValueError` for an `n` below 1 (`TypeError` for a non-integer `n`).

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> from structjax.equivariant import O
    >>> g = O(3).sample(jax.random.key(0))
    >>> det = jnp.linalg.det(g)  # +1 or -1: both components
    >>> print(bool(O(3).membership_error(g) < 1e-12), bool(jnp.abs(jnp.abs(det) - 1) < 1e-12))
    True True

    ```
    """
    n = static_int(n, f"O({n!r})", "n", minimum=1)
    return Group(_so_generators(n), _reflection(n)[None], f"O({n})", form=np.eye(n))


def LorentzGroup() -> Group:
    r"""The Lorentz group $O(1, 3)$, preserving $\\eta = \\mathrm{diag}(1, -1, -1, -1)$:
    rotations and boosts ($A^\top \eta + \eta A = 0$), with time reversal and parity as
    discrete generators (EMLP's `O13`, Finzi, Welling & Wilson 2021, Sec. 4). Also spelled
    `Lorentz()`, EMLP's name; not to be confused with `structjax.manifolds.Lorentz`, the
    hyperboloid model of hyperbolic space (which this group acts on).

    **Returns:** a `Group` on $\mathbb R^4$.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> from structjax.equivariant import LorentzGroup
    >>> lam = LorentzGroup().sample(jax.random.PRNGKey(1))
    >>> eta = jnp.diag(jnp.array([1.0, -1.0, -1.0, -1.0]))
    >>> bool(jnp.allclose(lam.T @ eta @ lam, eta, atol=1e-6 * float(jnp.abs(lam).max()) ** 2))
    True

    ```
    """
    gens = [_lorentz_generator(i, j) for i in range(4) for j in range(i + 1, 4)]
    discrete = np.stack([np.diag([-1.0, 1.0, 1.0, 1.0]), np.diag([1.0, -1.0, -1.0, -1.0])])
    return Group(np.stack(gens), discrete, "O(1,3)", form=np.diag([1.0, -1.0, -1.0, -1.0]))


def Lorentz() -> Group:  # noqa: N802
    r"""EMLP's spelling of `LorentzGroup()`, the group $O(1, 3)$ keeping
    $\eta = \mathrm{diag}(1, -1, -1, -1)$ (see there).

    **Returns:** a `Group` on $\mathbb R^4$, equal to `LorentzGroup()`.

    **Example:**

    ```pycon
    >>> import jax
    >>> from structjax.equivariant import Lorentz, LorentzGroup
    >>> lam = Lorentz().sample(jax.random.key(0))
    >>> print(Lorentz() == LorentzGroup(), bool(Lorentz().membership_error(lam) < 1e-10))
    True True

    ```
    """
    return LorentzGroup()


def _lorentz_generator(i: int, j: int) -> np.ndarray:
    # boosts (time-space) are symmetric, rotations (space-space) antisymmetric
    a = np.zeros((4, 4))
    if i == 0:
        a[i, j], a[j, i] = 1.0, 1.0
    else:
        a[i, j], a[j, i] = -1.0, 1.0
    return a


def Sp(n: int) -> Group:
    r"""The symplectic group $Sp(2n)$ of $\\mathbb R^{2n}$, preserving
    $J = \\begin{pmatrix} 0 & I \\\\ -I & 0 \\end{pmatrix}$: its Lie algebra is $\\{JS : S =
    S^\top\}$ (Hall, *Lie groups*, Sec. 1.2).

    **Arguments:**

    - `n`: half the dimension (the group acts on $\mathbb R^{2n}$), an int >= 1.

    **Returns:** a `Group`.

    **Raises:** `ValueError` for an `n` below 1 (`TypeError` for a non-integer `n`).

    **Example:**

    ```pycon
    >>> import jax
    >>> from structjax.equivariant import Sp
    >>> g = Sp(2).sample(jax.random.key(0))  # g^T J g = J
    >>> print(g.shape, bool(Sp(2).membership_error(g) < 1e-12))
    (4, 4) True

    ```
    """
    n = static_int(n, f"Sp({n!r})", "n", minimum=1)
    d = 2 * n
    j = np.block([[np.zeros((n, n)), np.eye(n)], [-np.eye(n), np.zeros((n, n))]])
    gens = []
    for a in range(d):
        for b in range(a, d):
            s = np.zeros((d, d))
            s[a, b] = s[b, a] = 1.0
            gens.append(j @ s)
    return Group(np.stack(gens), np.zeros((0, d, d)), f"Sp({d})", form=j)


def E(n: int) -> Group:
    r"""The Euclidean group $E(n)$ as $(n+1) \times (n+1)$ homogeneous matrices
    $\begin{pmatrix} R & t \\ 0 & 1 \end{pmatrix}$, $R \in O(n)$: what `EGNNLayer` is
    equivariant to.

    **Arguments:**

    - `n`: the dimension of the space moved, an int >= 1.

    **Returns:** a `Group`.

    **Raises:** `ValueError` for an `n` below 1 (`TypeError` for a non-integer `n`).

    **Example:**

    ```pycon
    >>> import jax
    >>> from structjax.equivariant import E
    >>> g = E(2).sample(jax.random.key(0))
    >>> print(g.shape, bool(E(2).membership_error(g) < 1e-12))
    (3, 3) True

    ```
    """
    n = static_int(n, f"E({n!r})", "n", minimum=1)
    so = _so_generators(n)
    gens = [np.pad(a, ((0, 1), (0, 1))) for a in so]
    for i in range(n):
        t = np.zeros((n + 1, n + 1))
        t[i, n] = 1.0
        gens.append(t)
    reflection = np.eye(n + 1)
    reflection[0, 0] = -1.0
    return Group(np.stack(gens), reflection[None], f"E({n})", form=np.eye(n), affine=True)


def SE(n: int) -> Group:
    r"""The special Euclidean group $SE(n)$ (rigid motions: rotations and translations) as
    $(n+1) \times (n+1)$ homogeneous matrices $\begin{pmatrix} R & t \\ 0 & 1
    \end{pmatrix}$, $R \in SO(n)$: the identity component of `E(n)`, the group of
    `structjax.integrators.RKMK(group=SE(3))` rigid-body kinematics.

    **Arguments:**

    - `n`: the dimension of the space moved, an int >= 2.

    **Returns:** a `Group`.

    **Raises:** `ValueError` for an `n` below 2 (`TypeError` for a non-integer `n`).

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> from structjax.equivariant import SE
    >>> g = SE(2).sample(jax.random.PRNGKey(0))
    >>> g.shape, bool(jnp.all(g[-1] == jnp.array([0.0, 0.0, 1.0])))
    ((3, 3), True)
    >>> bool(SE(2).membership_error(g) < 1e-12)
    True

    ```
    """
    n = static_int(n, f"SE({n!r})", "n", minimum=2)
    gens = [np.pad(a, ((0, 1), (0, 1))) for a in _so_generators(n)]
    for i in range(n):
        t = np.zeros((n + 1, n + 1))
        t[i, n] = 1.0
        gens.append(t)
    return Group(np.stack(gens), np.zeros((0, n + 1, n + 1)), f"SE({n})", form=np.eye(n),
                 special=True, affine=True)  # fmt: skip
