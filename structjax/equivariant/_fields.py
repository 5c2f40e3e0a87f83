"""Field types of planar steerable CNNs: the irreducible and regular representations of
$SO(2)$, $O(2)$, $C_N$, $D_N$ on a feature map's fibres, and their action on maps (conventions
in `_steerable`)."""

import functools
import math
from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._groups import Group
from .._guards import check_real_floating, guard, point_tolerance

# ------------------------------------------------------------------ groups and irreps


def _plane_group(group, call: str) -> tuple[int, bool, float]:
    """(N, flips, beta): N = 0 for SO(2)/O(2); the group's reflections are
    $R(\\beta + 2\\pi t/N) S_0$ ($\\beta = 0$ when $S_0$ is one of them)."""
    hint = "use SO(2), O(2), C(N) or D(N) from structjax.equivariant"
    if not isinstance(group, Group) or group.d != 2:
        raise ValueError(f"`{call}` needs a subgroup of O(2) acting on the plane; {hint}.")
    gens = group.discrete_generators
    flips = bool(any(np.linalg.det(h) < 0 for h in gens))
    if group.lie_algebra.shape[0]:
        if group.lie_algebra.shape[0] != 1:
            raise ValueError(f"`{call}`: {group.name} is not SO(2) or O(2); {hint}.")
        return 0, flips, 0.0
    if group.order is None or group.order % (2 if flips else 1):
        raise ValueError(f"`{call}`: {group.name} is not C(N) or D(N); {hint}.")
    n = group.order // 2 if flips else group.order
    unit, betas = 2 * math.pi / n, []
    for h in gens:
        steps = (math.atan2(h[1, 0], h[0, 0]) / unit) % 1.0
        steps = 0.0 if min(steps, 1 - steps) < 1e-9 else steps
        if np.linalg.det(h) > 0 and steps:
            raise ValueError(
                f"`{call}`: {group.name} rotates by other angles than 2pi/{n}; {hint}."
            )
        if np.linalg.det(h) < 0:
            betas.append(steps * unit)
    if (betas and max(betas) - min(betas) > 1e-9) or (n % 2 == 0 and any(betas)):
        raise ValueError(f"`{call}`: {group.name} has reflection axes this module does not handle.")
    return n, flips, (betas[0] if betas else 0.0)


def _irrep_matrix(irrep, theta, s, xp=np):
    """$\\psi(g)$ for $g = R(\\theta) S_0^s$; `s` a float 0/1 (numpy or traced)."""
    j, k, d = irrep
    c, sn, f = xp.cos(k * theta), xp.sin(k * theta), 1 - 2 * s
    if d == 1:
        return xp.reshape(c * (f if j else 1), (1, 1))
    return xp.stack([xp.stack([c, -sn * f]), xp.stack([sn, c * f])])


def _group_irreps(n: int, flips: bool) -> list:
    """The irreps of a finite $C_N$ / $D_N$, as (j, k, dim)."""
    ks = range(n // 2 + 1)
    if not flips:
        return [(0, k, 1 if k == 0 or 2 * k == n else 2) for k in ks]
    one = [(j, k, 1) for k in ks if k == 0 or 2 * k == n for j in (0, 1)]
    return one + [(1, k, 2) for k in ks if 0 < k and 2 * k != n]


def _parse_field(spec, n: int, flips: bool, call: str):
    """A field spec -> ("irrep", j, k, dim) or ("regular",)."""
    known = "an int frequency k, 'trivial', 'regular'" + (", 'sign' or (j, k)" if flips else "")
    if spec == "regular":
        if n == 0:
            raise ValueError(
                f"`{call}`: 'regular' fields need a finite group C(N) or D(N); SO(2) and O(2) "
                "have no finite regular representation (use irreps, or C(N) for large N)."
            )
        return ("regular",)
    if spec == "trivial":
        spec = (0, 0)
    elif spec == "sign" and flips:
        spec = (1, 0)
    elif isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        k = int(spec)
        if flips and n and 2 * k == n:
            raise ValueError(
                f"`{call}`: frequency {k} = N/2 of D({n}) is ambiguous; give (0, {k}) or (1, {k})."
            )
        spec = (1 if flips and k else 0, k)
    if not (isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(v, int) for v in spec)):
        raise ValueError(f"`{call}`: unknown field type {spec!r}; use {known}.")
    j, k = spec
    one_d = k == 0 or 2 * k == n
    if (
        k < 0
        or (n and 2 * k > n)
        or j not in (0, 1)
        or (j and not flips)
        or (flips and not one_d and j == 0)
    ):
        raise ValueError(
            f"`{call}`: {spec!r} is not an irrep of this group; frequencies are 0.."
            f"{n // 2 if n else 'inf'}"
            + (", (j, k) with j = 1 for 2-d irreps" if flips else "")
            + f"; use {known}."
        )
    return ("irrep", j, k, 1 if one_d else 2)


def _group_law(h, g, n: int):
    """Index of $hg$ for elements indexed $t + Ns$ ($R(2\\pi t/N + s\\beta) S_0^s$)."""
    (a, sa), (b, sb) = h, g
    return (a + (1 - 2 * sa) * b) % n + n * ((sa + sb) % 2)


@functools.cache
def _decompose(field, n: int, flips: bool, beta: float):
    """(irreps, Q): $\\rho(g) = Q\\,(\\oplus_i \\psi_i(g))\\,Q^\\top$ with Q orthogonal. For the
    regular representation, Q's columns are the matrix coefficients $g \\mapsto \\psi(g)_{ij}$
    (all columns for irreps of real type, the first for the complex-type 2-d irreps of $C_N$):
    the Peter-Weyl decomposition (Serre, "Linear representations of finite groups", Sec. 2.4)."""
    if field[0] == "irrep":
        return (field[1:],), None
    m = 2 if flips else 1
    elements = [(t, s) for s in range(m) for t in range(n)]
    thetas = np.array([2 * np.pi * t / n + s * beta for t, s in elements])
    ss = np.array([float(s) for _, s in elements])
    irreps, cols = [], []
    for irrep in _group_irreps(n, flips):
        mats = np.stack([_irrep_matrix(irrep, th, s) for th, s in zip(thetas, ss)])
        for col in range(irrep[2] if (flips or irrep[2] == 1) else 1):
            block = mats[:, :, col]
            cols.append(block / np.linalg.norm(block, axis=0))
            irreps.append(irrep)
    return tuple(irreps), np.concatenate(cols, axis=1)


# ------------------------------------------------------------------ field types and actions


class FieldType(eqx.Module):
    """A feature field type: a direct sum of fields over the plane, each carrying an
    irreducible or the regular representation of a point group $G \\le O(2)$.

    `fields` is a sequence of specs, or a mapping spec -> multiplicity. A spec is an int $k$
    (the irrep of frequency $k$: $k = 0$ trivial, scalar; $k \\ge 1$ two-dimensional,
    $\\psi_k(g) = R(k\\theta) S_0^s$; for $C_N$, $k \\le N/2$ and $k = N/2$ is the 1-d
    $\\cos(N\\theta/2)$), `'trivial'`, `'sign'` ($\\det g$, for $O(2)$, $D_N$), `(j, k)` (escnn's
    $\\psi_{j,k}$ of $O(2)$/$D_N$) or `'regular'` (for $C_N$/$D_N$: $\\mathbb R^{|G|}$ indexed
    by $R(2\\pi t/N) S_0^s$ at $t + Ns$, permuted by left multiplication).

    **Arguments:**

    - `group`: `SO(2)`, `O(2)`, `C(N)` or `D(N)`.
    - `fields`: a sequence of field specs, or a mapping spec -> multiplicity.

    `size` is the number of channels; `representation(g)` the block-diagonal $\\rho(g)$;
    `act(g, x)` the action on a field `(size, n, n)`. Pass a `FieldType` as `rep_in`/`rep_out`
    of `structjax.check.equivariance_error`.

    **Raises:** `ValueError` for a group that is not one of these, an empty `fields`, or a spec
    that is not an irrep (or regular representation) of the group.

    Reference: Weiler & Cesa, "General E(2)-Equivariant Steerable CNNs", NeurIPS 2019 (the
    irreps $\\psi_{j,k}$, as in escnn).

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> ft = se.FieldType(se.C(4), ["trivial", 1, "regular"])
    >>> g, h = se.C(4).sample(jax.random.key(0)), se.C(4).sample(jax.random.key(1))
    >>> rho = ft.representation
    >>> print(ft.size, bool(jnp.allclose(rho(g @ h), rho(g) @ rho(h), atol=1e-12)))
    7 True

    ```
    """

    group: Group = eqx.field(static=True)
    fields: tuple = eqx.field(static=True)
    n: int = eqx.field(static=True)
    flips: bool = eqx.field(static=True)
    beta: float = eqx.field(static=True)

    def __init__(self, group: Group, fields: Sequence | Mapping):
        call = f"FieldType({getattr(group, 'name', group)}, {fields!r})"
        self.n, self.flips, self.beta = _plane_group(group, call)
        if isinstance(fields, Mapping):
            fields = [spec for spec, mult in fields.items() for _ in range(mult)]
        if isinstance(fields, (str, int)) or not len(fields):
            raise ValueError(f"`{call}` needs a non-empty sequence (or mapping) of field specs.")
        self.group = group
        self.fields = tuple(_parse_field(f, self.n, self.flips, call) for f in fields)

    def _field_size(self, field) -> int:
        return field[3] if field[0] == "irrep" else (2 if self.flips else 1) * self.n

    @property
    def size(self) -> int:
        """The number of channels."""
        return sum(self._field_size(f) for f in self.fields)

    @property
    def slices(self) -> tuple[tuple[int, int], ...]:
        """(start, stop) channel range of each field."""
        stops = np.cumsum([self._field_size(f) for f in self.fields])
        return tuple((int(b - self._field_size(f)), int(b)) for f, b in zip(self.fields, stops))

    def _decompose(self, field):
        return _decompose(field, self.n, self.flips, self.beta)

    def _check_element(self, g, call: str):
        """`g` guarded: orthogonal (within the dtype's point tolerance), a rotation when the
        group has no reflections, and for regular fields an element of the finite group."""
        if jnp.shape(g) != (2, 2):
            raise ValueError(f"`{call}` needs `g` of shape (2, 2), got shape {jnp.shape(g)}.")
        check_real_floating(g, call, "g")
        tol = point_tolerance(g.dtype, 4)
        off = jnp.max(jnp.abs(g.T @ g - jnp.eye(2, dtype=g.dtype)))
        det = g[0, 0] * g[1, 1] - g[0, 1] * g[1, 0]
        bad = off > tol
        if not self.flips:
            bad = bad | (det < 0)
        if any(f[0] == "regular" for f in self.fields):
            theta = jnp.arctan2(g[1, 0], g[0, 0]) - jnp.where(det < 0, self.beta, 0.0)
            steps = theta * self.n / (2 * math.pi)
            bad = bad | (jnp.abs(steps - jnp.round(steps)) * (2 * math.pi / self.n) > 10 * tol)
        group = f"{self.group.name}" + ("" if self.flips else " (no reflections)")
        return guard(g, bad, f"`{call}` needs `g` to be an element of {group} (within {tol:.0e}).")

    def representation(
        self, g: Float[Array, "2 2"], *, checks: bool = True
    ) -> Float[Array, "size size"]:
        """$\\rho(g)$, block-diagonal over the fields. `g` must be an element of the group
        (orthogonal, a rotation for $SO(2)$/$C_N$, and for regular fields one of the $|G|$
        elements): otherwise a `ValueError` (eagerly) or a runtime error (under `jit`);
        `checks=False` skips the test (regular fields then use the nearest element).

        **Arguments:**

        - `g`: a `(2, 2)` group element.
        - `checks`: whether to test that `g` is in the group.

        **Returns:** the `(size, size)` matrix $\\rho(g)$.
        """
        if checks:
            g = self._check_element(g, "FieldType.representation(g)")
        theta = jnp.arctan2(g[1, 0], g[0, 0])
        s = (g[0, 0] * g[1, 1] - g[0, 1] * g[1, 0] < 0).astype(g.dtype)
        blocks = []
        for field in self.fields:
            if field[0] == "irrep":
                blocks.append(_irrep_matrix(field[1:], theta, s, jnp))
                continue
            n, m = self.n, 2 if self.flips else 1
            t = jnp.round((theta - s * self.beta) * n / (2 * math.pi)).astype(jnp.int32) % n
            si = s.astype(jnp.int32)
            inv = (jnp.where(si == 1, t, -t) % n, si)  # h^{-1}
            idx = jnp.arange(n * m, dtype=jnp.int32)
            perm = _group_law(inv, (idx % n, idx // n), n)
            blocks.append(jax.nn.one_hot(perm, n * m, dtype=g.dtype))
        return jax.scipy.linalg.block_diag(*blocks)

    def act(
        self, g: Float[Array, "2 2"], x: Float[Array, "c h w"], *, checks: bool = True
    ) -> Float[Array, "c h w"]:
        """$(g \\cdot x)(p) = \\rho(g)\\, x(g^{-1} p)$ about the centre of a square map. For
        $g$ in $D_4$ (entries within $10^3\\epsilon$ of $0, \\pm 1$) the pixels are permuted
        exactly (as `jnp.rot90` / `jnp.flip`); otherwise they are resampled bilinearly
        (`jax.scipy.ndimage.map_coordinates`, zero outside), an approximation that is good for
        smooth maps vanishing near the border (see `SteerableConv` for a measured bound).

        `g` must be an element of the group, as in `representation` (`checks=False` skips
        the test); `x` real floating point (`TypeError` otherwise).

        **Arguments:**

        - `g`: a `(2, 2)` group element.
        - `x`: one square field, shape `(size, n, n)`.
        - `checks`: whether to test that `g` is in the group.

        **Returns:** $g \\cdot x$, shape `(size, n, n)`.
        """
        if x.ndim != 3 or x.shape[0] != self.size or x.shape[1] != x.shape[2]:
            raise ValueError(
                f"`FieldType.act(g, x)` takes one square field of shape ({self.size}, n, n), "
                f"got {x.shape}."
            )
        check_real_floating(x, "FieldType.act(g, x)", "x")
        check_real_floating(g, "FieldType.act(g, x)", "g")
        g = jnp.asarray(g, x.dtype)
        if checks:
            g = self._check_element(g, "FieldType.act(g, x)")
        rho = self.representation(g, checks=False)
        return _transform_plane(g, jnp.einsum("ij,jhw->ihw", rho, x))


def _spec(field):
    return "regular" if field[0] == "regular" else field[1:3]


def _describe(ftype) -> str:
    if not isinstance(ftype, FieldType):
        return repr(ftype)
    return f"FieldType({ftype.group.name}, {[_spec(f) for f in ftype.fields]})"


def _transform_plane(g, x):
    """$x(g^{-1} p)$ on the pixel grid (convention of the module docstring)."""
    n = x.shape[-1]
    c = (n - 1) / 2
    i, j = jnp.meshgrid(jnp.arange(n, dtype=x.dtype), jnp.arange(n, dtype=x.dtype), indexing="ij")
    px, py = j - c, c - i
    sx, sy = g[0, 0] * px + g[1, 0] * py, g[0, 1] * px + g[1, 1] * py  # g^T p
    rows, cols = c - sy, c + sx
    exact = jnp.max(jnp.abs(g - jnp.round(g))) < 1e3 * jnp.finfo(x.dtype).eps
    ri = jnp.clip(jnp.round(rows), 0, n - 1).astype(jnp.int32)
    ci = jnp.clip(jnp.round(cols), 0, n - 1).astype(jnp.int32)
    permuted = x[:, ri, ci]

    def resample(channel):
        return jax.scipy.ndimage.map_coordinates(channel, [rows, cols], order=1, cval=0.0)

    return jnp.where(exact, permuted, jax.vmap(resample)(x))
