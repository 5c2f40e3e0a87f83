"""Steerable CNNs on the plane for $SO(2)$, $O(2)$, $C_N$ and $D_N$ (Weiler & Cesa 2019,
"General E(2)-equivariant steerable CNNs", NeurIPS; the design of their `escnn`): feature fields
whose fibres carry a representation of the point group, convolutions whose kernels solve the
steerability constraint analytically in circular harmonics times Gaussian rings (Weiler,
Hamprecht & Storath 2018, "Learning steerable filters for rotation equivariant CNNs", CVPR),
and the nonlinearities and invariant maps that commute with the group.

**Conventions.** As in `structjax.equivariant` group convolutions: pixel $(i, j)$ (row,
column) of an $n \\times n$ map is the point $p = (j - c,\\ c - i)$, $c = (n - 1)/2$ ($x$ right,
$y$ up). A group element is its $2 \\times 2$ matrix $g = R(\\theta) S_0^s$,
$S_0 = \\mathrm{diag}(1, -1)$, $s \\in \\{0, 1\\}$ ($\\theta$ = `atan2(g[1, 0], g[0, 0])`);
$R(+90°)$ acts on a map as `jnp.rot90`, $\\mathrm{diag}(-1, 1)$ as `jnp.flip(x, -1)`. Irreps:
1-d $\\psi_{j,k}(g) = \\cos(k\\theta)\\det(g)^j$ ($k = 0$: trivial $j = 0$, sign $j = 1$; and
$k = N/2$ for $C_N$/$D_N$, $N$ even); 2-d $\\psi_k(g) = R(k\\theta) S_0^s$ ($\\psi_1(g) = g$,
vector fields). On a field $f$: $(g \\cdot f)(p) = \\rho(g) f(g^{-1} p)$.
"""

import functools
import math
from collections.abc import Callable, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._groups import Group

_J = np.array([[0.0, -1.0], [1.0, 0.0]])
_F = np.diag([1.0, -1.0])


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

    **Arguments:** `group`: `SO(2)`, `O(2)`, `C(N)` or `D(N)`; `fields`.

    `size` is the number of channels; `representation(g)` the block-diagonal $\\rho(g)$;
    `act(g, x)` the action on a field `(size, n, n)`. Pass a `FieldType` as `rep_in`/`rep_out`
    of `structjax.check.equivariance_error`.
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
        return sum(self._field_size(f) for f in self.fields)

    @property
    def slices(self) -> tuple[tuple[int, int], ...]:
        """(start, stop) channel range of each field."""
        stops = np.cumsum([self._field_size(f) for f in self.fields])
        return tuple((int(b - self._field_size(f)), int(b)) for f, b in zip(self.fields, stops))

    def _decompose(self, field):
        return _decompose(field, self.n, self.flips, self.beta)

    def representation(self, g: Float[Array, "2 2"]) -> Float[Array, "size size"]:
        """$\\rho(g)$, block-diagonal over the fields (regular fields: $g$ must lie in the
        group; it is rounded to the nearest element)."""
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

    def act(self, g: Float[Array, "2 2"], x: Float[Array, "c h w"]) -> Float[Array, "c h w"]:
        """$(g \\cdot x)(p) = \\rho(g)\\, x(g^{-1} p)$ about the centre of a square map. For
        $g$ in $D_4$ (entries within $10^3\\epsilon$ of $0, \\pm 1$) the pixels are permuted
        exactly (as `jnp.rot90` / `jnp.flip`); otherwise they are resampled bilinearly
        (`jax.scipy.ndimage.map_coordinates`, zero outside), an approximation that is good for
        smooth maps vanishing near the border (see `SteerableConv` for a measured bound)."""
        if x.ndim != 3 or x.shape[0] != self.size or x.shape[1] != x.shape[2]:
            raise ValueError(
                f"`FieldType.act(g, x)` takes one square field of shape ({self.size}, n, n), "
                f"got {x.shape}."
            )
        g = jnp.asarray(g, x.dtype)
        return _transform_plane(g, jnp.einsum("ij,jhw->ihw", self.representation(g), x))


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


# ------------------------------------------------------------------ the kernel basis


def _frequencies(k0: int, n: int, cutoff: int) -> list[int]:
    """$\\{k_0 + tN\\} \\cap [-F, F]$ ($t = 0$ only for $SO(2)$/$O(2)$)."""
    if n == 0:
        return [k0] if abs(k0) <= cutoff else []
    return [f for f in range(-cutoff, cutoff + 1) if (f - k0) % n == 0]


def _angular_basis(n, flips, beta, irrep_in, irrep_out, cutoff, phi):
    """The analytic solutions of $k(g\\phi) = \\psi_{out}(g) k(\\phi) \\psi_{in}(g)^{-1}$ on a
    ring with angular frequency $|f| \\le$ `cutoff` (the solutions tabulated in the appendix of
    Weiler & Cesa 2019, as e2cnn's `R2DiscreteRotationsSolution` and `R2FlipsSolution` build
    them; re-derived here in this module's conventions and tested against the dimension of the
    solution space): returns frequencies `(b,)` and values `(b, d_out, d_in, len(phi))`. With
    $c_f, s_f = \\cos f\\phi, \\sin f\\phi$ and $f$ ranging over $k_0 + N\\mathbb Z$:

    - 1-d -> 1-d, $k_0 = k_{out} - k_{in}$, $f \\ge 0$: $c_f$, $s_f$ (reflections keep $c_f$ if
      $j_{in} = j_{out}$, else $s_f$);
    - 1-d -> 2-d, $k_0 = k_{out} - k_{in}$: $R(f\\phi) e_1$, $R(f\\phi) e_2$ (reflections keep
      $e_{1 + j_{in}}$); 2-d -> 1-d, $k_0 = k_{out} - k_{in}$: $e_1^\\top R(f\\phi)$,
      $e_2^\\top R(f\\phi)$ (reflections keep $e_{1 + j_{out}}$);
    - 2-d -> 2-d: $R(f\\phi)$, $R(f\\phi) J$ for $k_0 = k_{out} - k_{in}$ and $S_0 R(f\\phi)$,
      $S_0 R(f\\phi) J$ for $k_0 = -(k_{out} + k_{in})$ (reflections keep those without $J$).

    For a reflection axis $\\beta \\ne 0$ (odd $N$) the solution is conjugated by
    $R(\\beta/2)$."""
    (ji, ki, di), (jo, ko, do) = irrep_in, irrep_out
    phi = phi - beta / 2
    out, freqs = [], []

    def add(f, mat):
        freqs.append(f)
        out.append(np.asarray(mat, np.float64).reshape(do, di, -1))

    for f in _frequencies(ko - ki, n, cutoff):
        c, s = np.cos(f * phi), np.sin(f * phi)
        if di == do == 1:
            if f >= 0:
                if not flips or ji == jo:
                    add(f, c)
                if f > 0 and (not flips or ji != jo):
                    add(f, s)
        elif di == 1:
            for e in (0, 1):
                if not flips or e == ji:
                    add(f, [c, s] if e == 0 else [-s, c])
        elif do == 1:
            for e in (0, 1):
                if not flips or e == jo:
                    add(f, [c, -s] if e == 0 else [s, c])
        else:
            rot = np.array([[c, -s], [s, c]])
            add(f, rot)
            if not flips:
                add(f, np.einsum("ijp,jk->ikp", rot, _J))
    if di == do == 2:
        for f in _frequencies(-(ko + ki), n, cutoff):
            c, s = np.cos(f * phi), np.sin(f * phi)
            frot = np.einsum("ij,jkp->ikp", _F, np.array([[c, -s], [s, c]]))
            add(f, frot)
            if not flips:
                add(f, np.einsum("ijp,jk->ikp", frot, _J))
    if not out:
        return np.zeros(0, int), np.zeros((0, do, di, phi.size))
    basis = np.stack(out)
    if flips and beta:
        rot_out = _irrep_matrix(irrep_out, beta / 2, 0.0)
        rot_in = _irrep_matrix(irrep_in, beta / 2, 0.0)
        basis = np.einsum("ij,bjkp,lk->bilp", rot_out, basis, rot_in)
    return np.array(freqs), basis


def default_basis_params(kernel_size: int):
    """escnn's defaults (`compute_basis_params`, `_manual_fco1`) for an odd `kernel_size`:
    rings at radii $0, 1, \\dots, (k-1)/2$; widths $\\sigma = 0.6$ ($0.4$ on the outer ring,
    $0.005$ at the centre); maximum angular frequency per ring $F(0) = 0$,
    $F(r_{max}) = \\min(2r, 2)$, otherwise $\\min(2r, 2r - (r + 1) \\bmod 2)$: on a ring of
    radius $r$ there are about $2\\pi r$ samples, so higher frequencies alias (the band limit
    of Weiler & Cesa 2019 and escnn); the centre carries only $f = 0$, where the angle is
    undefined.

    **Returns:** `(rings, sigma, max_frequencies)`, tuples."""
    r_max = (kernel_size - 1) // 2
    rings = tuple(float(r) for r in range(r_max + 1))
    sigma = tuple(0.005 if r == 0 else 0.4 if r == r_max else 0.6 for r in range(r_max + 1))

    def cutoff(r):
        if r == 0:
            return 0
        return min(2 * r, 2 if r == r_max else 2 * r - (r + 1) % 2)

    return rings, sigma, tuple(cutoff(r) for r in range(r_max + 1))


@functools.cache
def _grid_basis(n, flips, beta, irrep_in, irrep_out, kernel_size, rings, sigma, cutoffs):
    """The angular basis times Gaussian rings $e^{-(r - r_i)^2 / 2\\sigma_i^2}$, sampled on the
    kernel grid, each element scaled to unit Frobenius norm: `(b, d_out, d_in, k, k)`."""
    c = (kernel_size - 1) / 2
    i, j = np.meshgrid(np.arange(kernel_size), np.arange(kernel_size), indexing="ij")
    x, y = (j - c).ravel(), (c - i).ravel()
    r, phi = np.hypot(x, y), np.arctan2(y, x)
    origin = r < 1e-9
    phi[origin] = 0.0
    elements = []
    for ring, width, cutoff in zip(rings, sigma, cutoffs):
        freqs, ang = _angular_basis(n, flips, beta, irrep_in, irrep_out, cutoff, phi)
        ang[:, :, :, origin] *= (freqs == 0)[:, None, None, None]  # no angle at the centre
        elements.append(ang * np.exp(-((r - ring) ** 2) / (2 * width**2)))
    basis = np.concatenate(elements).reshape(
        -1, irrep_out[2], irrep_in[2], kernel_size, kernel_size
    )
    norms = np.sqrt(np.sum(basis**2, axis=(1, 2, 3, 4)))
    basis = basis[norms > 1e-10] / norms[norms > 1e-10, None, None, None, None]
    basis.setflags(write=False)
    return basis


def steerable_kernel_basis(
    group: Group,
    in_irrep,
    out_irrep,
    kernel_size: int,
    rings: Sequence[float] | None = None,
    sigma: Sequence[float] | None = None,
    max_frequencies: Sequence[int] | None = None,
) -> np.ndarray:
    """The steerable kernel basis between two irreps (specs as in `FieldType`), sampled on the
    `kernel_size` grid: every element satisfies
    $k(g p) = \\psi_{out}(g) k(p) \\psi_{in}(g)^{-1}$ (the kernel constraint of Weiler & Cesa
    2019) exactly where $g$ maps the grid onto itself, and analytically before sampling.

    **Returns:** a float64 numpy array `(b, d_out, d_in, kernel_size, kernel_size)`."""
    call = f"steerable_kernel_basis({getattr(group, 'name', group)}, {in_irrep!r}, {out_irrep!r})"
    ftype = FieldType(group, [in_irrep, out_irrep])
    if any(f[0] != "irrep" for f in ftype.fields):
        raise ValueError(f"`{call}` takes irreps; a 'regular' field is a sum of irreps.")
    params = _basis_params(kernel_size, rings, sigma, max_frequencies, call)
    a, b = (f[1:] for f in ftype.fields)
    return _grid_basis(ftype.n, ftype.flips, ftype.beta, a, b, kernel_size, *params)


def _basis_params(kernel_size, rings, sigma, max_frequencies, call):
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"`{call}` needs an odd kernel_size >= 1, got {kernel_size!r}: an even kernel has no "
            "centre pixel to rotate about."
        )
    d_rings, d_sigma, d_freq = default_basis_params(kernel_size)
    rings = d_rings if rings is None else tuple(float(r) for r in rings)
    if sigma is None:
        sigma = d_sigma if rings == d_rings else tuple(0.005 if r == 0 else 0.6 for r in rings)
    sigma = tuple(float(s) for s in sigma)
    if max_frequencies is None:  # custom rings: F(r) = floor(2r)
        max_frequencies = d_freq if rings == d_rings else tuple(int(2 * r) for r in rings)
    max_frequencies = tuple(int(f) for f in max_frequencies)
    if not len(rings) == len(sigma) == len(max_frequencies) or min(sigma) <= 0 or min(rings) < 0:
        raise ValueError(
            f"`{call}`: rings {rings}, sigma {sigma} and max_frequencies {max_frequencies} need "
            "equal lengths, radii >= 0 and widths > 0."
        )
    return rings, sigma, max_frequencies


# ------------------------------------------------------------------ the convolution


@functools.cache
def _layout(ftype: FieldType):
    """Irrep coordinates of a field type: {irrep: channel indices (occurrence-major)},
    the block-diagonal change of basis Q (None if all fields are irreps)."""
    index, qs, start = {}, [], 0
    for field in ftype.fields:
        irreps, q = ftype._decompose(field)
        for irrep in irreps:
            index.setdefault(irrep, []).extend(range(start, start + irrep[2]))
            start += irrep[2]
        qs.append(np.eye(sum(i[2] for i in irreps)) if q is None else q)
    q = None if all(f[0] == "irrep" for f in ftype.fields) else _block_diag(qs)
    return {k: np.array(v) for k, v in index.items()}, q


def _block_diag(blocks):
    size = sum(b.shape[0] for b in blocks)
    out, s = np.zeros((size, size)), 0
    for b in blocks:
        out[s : s + b.shape[0], s : s + b.shape[0]] = b
        s += b.shape[0]
    return out


@functools.cache
def _plan(in_type: FieldType, out_type: FieldType, params):
    """The static layout of a kernel: blocks[b][a] = (shape, (basis, offset, (n_b, n_a,
    n_basis)) or None) over the irrep types of out and in; the He standard deviation of each
    weight; for out and in, the order of irrep coordinates and the change of basis Q."""
    (idx_in, q_in), (idx_out, q_out) = _layout(in_type), _layout(out_type)
    t, k = in_type, params[0]
    fan, found = {}, {}
    for b in idx_out:
        for a, ia in idx_in.items():
            basis = _grid_basis(t.n, t.flips, t.beta, a, b, *params)
            if basis.shape[0]:
                found[a, b] = basis
                fan[b] = fan.get(b, 0.0) + len(ia) / a[2] * basis.shape[0] / b[2]
    blocks, std, offset = [], [], 0
    for b, ib in idx_out.items():
        row = []
        for a, ia in idx_in.items():
            shape = (len(ib), len(ia), k, k)
            if (a, b) not in found:
                row.append((shape, None))
                continue
            sizes = (len(ib) // b[2], len(ia) // a[2], found[a, b].shape[0])
            row.append((shape, (found[a, b], offset, sizes)))
            offset += math.prod(sizes)
            std.append(np.full(math.prod(sizes), math.sqrt(2.0 / fan[b])))
        blocks.append(row)
    std = np.concatenate(std) if std else np.zeros(0)
    order = [np.concatenate(list(idx.values())) for idx in (idx_out, idx_in)]
    return blocks, std, (order[0], q_out), (order[1], q_in)


def _change_basis(kern, order, q, axis: int):
    """From irrep coordinates listed in `order` to the field coordinates: $Q$ (or the
    permutation) along `axis`."""
    if q is None:
        return jnp.take(kern, np.argsort(order), axis=axis)
    q = jnp.asarray(q[:, order], kern.dtype)
    return (
        jnp.einsum("ox,x...->o...", q, kern)
        if axis == 0
        else jnp.einsum("iy,oy...->oi...", q, kern)
    )


class SteerableConv(eqx.Module):
    """A $G$-steerable convolution $\\mathbb R^2 \\to \\mathbb R^2$ between field types
    (Weiler & Cesa 2019): $y(p) = \\sum_q K(q)\\, x(p + q)$ with a kernel that solves
    $K(g q) = \\rho_{out}(g) K(q) \\rho_{in}(g)^{-1}$, so that $y(g \\cdot x) = g \\cdot y(x)$.

    Both types are decomposed into irreps, $\\rho = Q (\\oplus_i \\psi_i) Q^\\top$; between each
    pair of irreps the kernel is a learned combination of the analytic basis of
    `steerable_kernel_basis` (circular harmonics of frequencies $k_{out} \\pm k_{in} + N\\mathbb Z$
    times Gaussian rings, band-limited per ring as escnn does: see `default_basis_params`);
    the bias lives on the trivial irreps of the output. Weights are initialised as He, Zhang,
    Ren & Sun (2015, "Delving deep into rectifiers") per output irrep: variance
    $2/\\text{fan-in}$, the fan-in summing the squared norms of the basis elements reaching
    that irrep.

    **Equivariance.** Exact (to rounding) for $g \\in D_4 \\cap G$ on square maps of any size:
    the grid, the 'SAME' zero padding and the sampled kernel are mapped onto themselves. For
    other angles the grid is not, the kernel is a sampled band-limited function and
    `FieldType.act` resamples bilinearly, so equivariance is approximate. Measured with
    `structjax.check.equivariance_error` (16 random angles, float64) on a 33x33 grid, kernel 7,
    default rings, for inputs that are sums of 6 Gaussians of width 2.5 pixels centred in a
    disc of radius 9 and tapered outside it: relative error 0.8e-2 to 1.3e-2 between SO(2)
    types with frequencies 0, 1, 2 and between O(2) types (trivial, sign, 1, 2) over nine
    seeds. **Stated bound: 3e-2** for such inputs (tested). It grows for rougher inputs and
    falls slowly for smoother ones (one seed, scalar inputs: 3.3e-2 at width 1.5, 1.1e-2 at
    width 4).

    **Arguments:** `in_type`, `out_type` (`FieldType`s of the same group); `kernel_size`
    (odd); `use_bias`; `dtype`; `rings`, `sigma`, `max_frequencies` (per ring; default
    `default_basis_params(kernel_size)`); `key`. Input `(in_type.size, H, W)`, output
    `(out_type.size, H, W)`.
    """

    weights: Float[Array, " n"]
    bias: Float[Array, " trivial"] | None
    in_type: FieldType = eqx.field(static=True)
    out_type: FieldType = eqx.field(static=True)
    kernel_size: int = eqx.field(static=True)
    rings: tuple[float, ...] = eqx.field(static=True)
    sigma: tuple[float, ...] = eqx.field(static=True)
    max_frequencies: tuple[int, ...] = eqx.field(static=True)

    def __init__(
        self,
        in_type: FieldType,
        out_type: FieldType,
        kernel_size: int,
        use_bias: bool = True,
        dtype=None,
        rings: Sequence[float] | None = None,
        sigma: Sequence[float] | None = None,
        max_frequencies: Sequence[int] | None = None,
        *,
        key: PRNGKeyArray,
    ):
        call = (
            f"SteerableConv({_describe(in_type)}, {_describe(out_type)}, "
            f"kernel_size={kernel_size!r})"
        )
        if not (isinstance(in_type, FieldType) and isinstance(out_type, FieldType)):
            raise ValueError(f"`{call}` needs two `FieldType`s.")
        if in_type.group != out_type.group:
            raise ValueError(
                f"`{call}`: the field types belong to different groups, "
                f"{in_type.group.name} and {out_type.group.name}."
            )
        self.rings, self.sigma, self.max_frequencies = _basis_params(
            kernel_size, rings, sigma, max_frequencies, call
        )
        self.in_type, self.out_type, self.kernel_size = in_type, out_type, kernel_size
        dtype = dtype or jnp.result_type(float)
        std = _plan(in_type, out_type, self._params)[1]
        self.weights = jnp.asarray(std, dtype) * jax.random.normal(key, std.shape, dtype)
        n_trivial = len(_layout(out_type)[0].get((0, 0, 1), ()))
        self.bias = jnp.zeros(n_trivial, dtype) if use_bias and n_trivial else None

    @property
    def _params(self):
        return (self.kernel_size, self.rings, self.sigma, self.max_frequencies)

    @property
    def kernel(self) -> Float[Array, "out in k k"]:
        """The full kernel $K$, `(out_type.size, in_type.size, k, k)`."""
        blocks, _, (perm_out, q_out), (perm_in, q_in) = _plan(
            self.in_type, self.out_type, self._params
        )
        w = self.weights
        rows = []
        for row in blocks:
            cols = []
            for shape, pair in row:
                if pair is None:
                    cols.append(jnp.zeros(shape, w.dtype))
                    continue
                basis, offset, (nb, na, nbasis) = pair
                ws = w[offset : offset + nb * na * nbasis].reshape(nb, na, nbasis)
                block = jnp.einsum("oin,nxyuv->oxiyuv", ws, jnp.asarray(basis, w.dtype))
                cols.append(block.reshape(shape))
            rows.append(jnp.concatenate(cols, axis=1))
        kern = jnp.concatenate(rows, axis=0)  # irrep coordinates, grouped by irrep type
        kern = _change_basis(kern, perm_out, q_out, 0)
        return _change_basis(kern, perm_in, q_in, 1)

    def _full_bias(self, dtype):
        idx, q = _layout(self.out_type)
        b = jnp.zeros(self.out_type.size, dtype).at[idx[(0, 0, 1)]].set(self.bias)
        return b if q is None else jnp.asarray(q, dtype) @ b

    def __call__(
        self, x: Float[Array, "c_in h w"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "c_out h w"]:
        del key
        if x.ndim != 3 or x.shape[0] != self.in_type.size:
            raise ValueError(
                f"`SteerableConv` with in_type of size {self.in_type.size} takes one field of "
                f"shape ({self.in_type.size}, H, W), got {x.shape} (batch with `jax.vmap`)."
            )
        y = jax.lax.conv_general_dilated(
            x[None],
            self.kernel,
            (1, 1),
            "SAME",
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
            # full float32 on GPUs/TPUs too (their default TF32/bf16 passes would cost the
            # 1e-5 float32 equivariance), as `manifolds._base.mm`
            precision=jax.lax.Precision.HIGHEST,
        )[0]
        return y if self.bias is None else y + self._full_bias(y.dtype)[:, None, None]


# ------------------------------------------------------------------ nonlinearities and pooling


def _check_field(ftype: FieldType, x, name: str):
    if x.ndim != 3 or x.shape[0] != ftype.size:
        raise ValueError(
            f"`{name}` takes one field of shape ({ftype.size}, H, W), got {x.shape} "
            "(batch with `jax.vmap`)."
        )


def _safe_norm(v, axis=0):
    sq = jnp.sum(v**2, axis=axis)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0), positive


def _is_trivial(field) -> bool:
    return field[0] == "irrep" and field[1:3] == (0, 0)


class NormNonlinearity(eqx.Module):
    """The norm nonlinearity (Worrall et al. 2017, "Harmonic networks: deep translation and
    rotation equivariance", CVPR; Weiler & Cesa 2019): on each field $v$,
    $v \\mapsto \\mathrm{ReLU}(|v| + b)\\, v / |v|$ with a learned bias $b$ per field. $|v|$ is
    invariant under any orthogonal $\\rho$, so the map is equivariant for every field (irreps,
    regular); the direction of $v$ is kept (and $0 \\mapsto 0$, with a finite gradient).

    **Arguments:** `field_type`; `dtype`; `key` (biases start uniform in $[-0.5, 0]$).
    """

    bias: Float[Array, " fields"]
    field_type: FieldType = eqx.field(static=True)

    def __init__(self, field_type: FieldType, dtype=None, *, key: PRNGKeyArray):
        _need_field_type(field_type, "NormNonlinearity")
        dtype = dtype or jnp.result_type(float)
        self.field_type = field_type
        self.bias = -0.5 * jax.random.uniform(key, (len(field_type.fields),), dtype)

    def __call__(
        self, x: Float[Array, "c h w"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "c h w"]:
        del key
        _check_field(self.field_type, x, "NormNonlinearity")
        out = []
        for (start, stop), b in zip(self.field_type.slices, self.bias):
            v = x[start:stop]
            norm, positive = _safe_norm(v)
            scale = jnp.where(positive, jax.nn.relu(norm + b) / jnp.where(positive, norm, 1.0), 0)
            out.append(v * scale)
        return jnp.concatenate(out)


def _need_field_type(ftype, name: str):
    if not isinstance(ftype, FieldType):
        raise ValueError(f"`{name}({ftype!r})` needs a `FieldType`.")


class GatedFieldNonlinearity(eqx.Module):
    """The gated nonlinearity (Weiler, Geiger, Welling, Boomsma & Cohen 2018, "3D steerable
    CNNs", NeurIPS; Weiler & Cesa 2019) on the plane: every field of `field_type` that is
    neither trivial nor regular is multiplied by $\\sigma(s)$ of its own scalar gate $s$;
    trivial and regular fields get a pointwise ReLU (which commutes with their permutation
    action). Gates are invariant, so the map is equivariant.

    The input type `in_type` is one trivial gate per gated field, then `field_type`; build the
    preceding `SteerableConv` with `out_type=gate.in_type`. The output type is `field_type`.
    """

    field_type: FieldType = eqx.field(static=True)

    def __check_init__(self):
        _need_field_type(self.field_type, "GatedFieldNonlinearity")

    @property
    def in_type(self) -> FieldType:
        gates = sum(not _pointwise(f) for f in self.field_type.fields)
        specs = ["trivial"] * gates + [_spec(f) for f in self.field_type.fields]
        return FieldType(self.field_type.group, specs)

    def __call__(
        self, x: Float[Array, "c_in h w"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "c_out h w"]:
        del key
        _check_field(self.in_type, x, "GatedFieldNonlinearity")
        gates = sum(not _pointwise(f) for f in self.field_type.fields)
        out, gate = [], 0
        for field, (start, stop) in zip(self.field_type.fields, self.field_type.slices):
            v = x[gates + start : gates + stop]
            if _pointwise(field):
                out.append(jax.nn.relu(v))
            else:
                out.append(v * jax.nn.sigmoid(x[gate]))
                gate += 1
        return jnp.concatenate(out)


def _pointwise(field) -> bool:
    return field[0] == "regular" or _is_trivial(field)


def _spec(field):
    return "regular" if field[0] == "regular" else field[1:3]


class PointwiseNonlinearity(eqx.Module):
    """A pointwise nonlinearity (default ReLU) on trivial and regular fields, whose
    representations are permutations, with which it commutes (Weiler & Cesa 2019).
    Other fields raise a `ValueError`: use `NormNonlinearity` or `GatedFieldNonlinearity`.

    **Arguments:** `field_type`; `function` (elementwise, default `jax.nn.relu`).
    """

    field_type: FieldType = eqx.field(static=True)
    function: Callable = eqx.field(static=True)

    def __init__(self, field_type: FieldType, function: Callable = jax.nn.relu):
        _need_field_type(field_type, "PointwiseNonlinearity")
        bad = [_spec(f) for f in field_type.fields if not _pointwise(f)]
        if bad:
            raise ValueError(
                f"`PointwiseNonlinearity({_describe(field_type)})`: fields {bad} are not trivial "
                "or regular, and a pointwise nonlinearity does not commute with their "
                "representation; use NormNonlinearity or GatedFieldNonlinearity."
            )
        self.field_type, self.function = field_type, function

    def __call__(
        self, x: Float[Array, "c h w"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "c h w"]:
        del key
        _check_field(self.field_type, x, "PointwiseNonlinearity")
        return self.function(x)


class InvariantPool(eqx.Module):
    """Group pooling, an invariant map (Weiler & Cesa 2019): each field becomes one
    invariant scalar map, $\\max_s v_s$ over the fibre of a regular field, $|v|$ for any
    other non-trivial field, $v$ itself for a trivial one. Follow it by a spatial pooling over
    a disc for rotation-invariant features of a classifier.

    **Arguments:** `field_type`. Input `(field_type.size, H, W)`, output
    `(len(field_type.fields), H, W)`, of type `out_type` (all trivial).
    """

    field_type: FieldType = eqx.field(static=True)

    def __check_init__(self):
        _need_field_type(self.field_type, "InvariantPool")

    @property
    def out_type(self) -> FieldType:
        return FieldType(self.field_type.group, ["trivial"] * len(self.field_type.fields))

    def __call__(
        self, x: Float[Array, "c h w"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "f h w"]:
        del key
        _check_field(self.field_type, x, "InvariantPool")
        out = []
        for field, (start, stop) in zip(self.field_type.fields, self.field_type.slices):
            v = x[start:stop]
            if _is_trivial(field):
                out.append(v[0])
            elif field[0] == "regular":
                out.append(jnp.max(v, axis=0))
            else:
                out.append(_safe_norm(v)[0])
        return jnp.stack(out)
