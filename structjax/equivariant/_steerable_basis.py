"""The steerable kernel basis (Weiler & Cesa 2019): circular harmonics times Gaussian rings,
solving the kernel constraint analytically per pair of irreps."""

import functools
import math
from collections.abc import Sequence

import numpy as np

from .._groups import Group
from ._fields import (
    FieldType,
    _irrep_matrix,
)

_J = np.array([[0.0, -1.0], [1.0, 0.0]])  # the rotation by +90 degrees
_F = np.diag([1.0, -1.0])  # the reflection S_0


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


def default_basis_params(
    kernel_size: int,
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[int, ...]]:
    """escnn's defaults (`compute_basis_params`, `_manual_fco1`) for an odd `kernel_size`:
    rings at radii $0, 1, \\dots, (k-1)/2$; widths $\\sigma = 0.6$ ($0.4$ on the outer ring,
    $0.005$ at the centre); maximum angular frequency per ring $F(0) = 0$,
    $F(r_{max}) = \\min(2r, 2)$, otherwise $\\min(2r, 2r - (r + 1) \\bmod 2)$: on a ring of
    radius $r$ there are about $2\\pi r$ samples, so higher frequencies alias (the band limit
    of Weiler & Cesa 2019 and escnn); the centre carries only $f = 0$, where the angle is
    undefined.

    **Arguments:**

    - `kernel_size`: the kernel's odd size $k$.

    **Returns:** `(rings, sigma, max_frequencies)`, tuples of one entry per ring.

    Reference: Weiler & Cesa, "General E(2)-Equivariant Steerable CNNs", NeurIPS 2019, and
    escnn's `compute_basis_params`.

    **Example:**

    ```pycon
    >>> import structjax.equivariant as se
    >>> rings, sigma, freqs = se.default_basis_params(5)
    >>> print(rings, freqs)
    (0.0, 1.0, 2.0) (0, 2, 2)

    ```
    """
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
    in_irrep: int | str | tuple[int, int],
    out_irrep: int | str | tuple[int, int],
    kernel_size: int,
    rings: Sequence[float] | None = None,
    sigma: Sequence[float] | None = None,
    max_frequencies: Sequence[int] | None = None,
) -> np.ndarray:
    """The steerable kernel basis between two irreps (specs as in `FieldType`), sampled on the
    `kernel_size` grid: every element satisfies
    $k(g p) = \\psi_{out}(g) k(p) \\psi_{in}(g)^{-1}$ (the kernel constraint of Weiler & Cesa
    2019) exactly where $g$ maps the grid onto itself, and analytically before sampling.

    **Arguments:**

    - `group`: `SO(2)`, `O(2)`, `C(N)` or `D(N)`.
    - `in_irrep`: the input irrep, a spec as in `FieldType` (not 'regular').
    - `out_irrep`: the output irrep, likewise.
    - `kernel_size`: the grid's odd size.
    - `rings`, `sigma`, `max_frequencies`: the radial basis, per ring (default
        `default_basis_params(kernel_size)`).

    **Returns:** a float64 numpy array `(b, d_out, d_in, kernel_size, kernel_size)`, each
    element of unit Frobenius norm.

    **Raises:** `ValueError` for a group or spec `FieldType` refuses, a 'regular' spec, an
    even `kernel_size`, or bad basis parameters.

    **Example:**

    ```pycon
    >>> import numpy as np
    >>> import structjax.equivariant as se
    >>> B = se.steerable_kernel_basis(se.C(4), "trivial", "trivial", 5)[:, 0, 0]
    >>> # scalar -> scalar kernels of C4 are invariant under the rotation by 90 degrees
    >>> print(B.ndim, bool(np.allclose(np.rot90(B, axes=(1, 2)), B, atol=1e-12)))
    3 True

    ```
    """
    call = f"steerable_kernel_basis({getattr(group, 'name', group)}, {in_irrep!r}, {out_irrep!r})"
    ftype = FieldType(group, [in_irrep, out_irrep])
    if any(f[0] != "irrep" for f in ftype.fields):
        raise ValueError(f"`{call}` takes irreps; a 'regular' field is a sum of irreps.")
    params = _basis_params(kernel_size, rings, sigma, max_frequencies, call)
    a, b = (f[1:] for f in ftype.fields)
    return _grid_basis(ftype.n, ftype.flips, ftype.beta, a, b, kernel_size, *params)


def _basis_params(kernel_size, rings, sigma, max_frequencies, call):
    if (
        isinstance(kernel_size, bool)
        or not isinstance(kernel_size, int)
        or kernel_size < 1
        or kernel_size % 2 == 0
    ):
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
    if (
        not len(rings) == len(sigma) == len(max_frequencies) >= 1
        or not all(math.isfinite(v) for v in rings + sigma)
        or not min(sigma) > 0
        or not min(rings) >= 0
        or min(max_frequencies) < 0
    ):
        raise ValueError(
            f"`{call}`: rings {rings}, sigma {sigma} and max_frequencies {max_frequencies} need "
            "equal lengths (at least one ring), finite radii >= 0, finite widths > 0 and "
            "frequencies >= 0."
        )
    return rings, sigma, max_frequencies
