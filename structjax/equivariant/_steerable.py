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
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from .._guards import check_param_dtype, check_real_floating
from ._fields import FieldType, _describe, _spec
from ._steerable_basis import (
    _basis_params,
    _grid_basis,
)

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

    **Arguments:**

    - `in_type`: the input `FieldType`.
    - `out_type`: the output `FieldType`, of the same group.
    - `kernel_size`: the kernel's (odd) size.
    - `use_bias`: whether to add a bias on the output's trivial fields.
    - `dtype`: the parameters' real floating dtype.
    - `rings`, `sigma`, `max_frequencies`: the radial basis, per ring (default
        `default_basis_params(kernel_size)`).
    - `key`: a PRNG key for the initialisation.

    Input `(in_type.size, H, W)`, output `(out_type.size, H, W)`.

    **Raises:** `ValueError` for arguments that are not `FieldType`s, types of different
    groups, bad basis parameters, or (at call time) an input of the wrong shape.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> from structjax.check import equivariance_error
    >>> G = se.C(4)
    >>> t_in, t_out = se.FieldType(G, ["trivial", 1]), se.FieldType(G, [1, "regular"])
    >>> conv = se.SteerableConv(t_in, t_out, 3, key=jax.random.key(0))
    >>> x = jax.random.normal(jax.random.key(1), (3, 5, 5))
    >>> err = equivariance_error(conv, G, x, jax.random.key(2), rep_in=t_in, rep_out=t_out)
    >>> print(conv(x).shape, bool(err < 1e-12))
    (6, 5, 5) True

    ```
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
        dtype: DTypeLike | None = None,
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
        check_param_dtype(dtype, call)
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
        check_real_floating(x, "SteerableConv(...)(x)", "x")
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
    check_real_floating(x, f"{name}(...)(x)", "x")


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

    **Arguments:**

    - `field_type`: the `FieldType` of the input and output.
    - `dtype`: the biases' real floating dtype.
    - `key`: a PRNG key (biases start uniform in $[-0.5, 0]$).

    **Raises:** `ValueError` for a `field_type` that is not a `FieldType`, or (at call time)
    an input of the wrong shape.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> from structjax.check import equivariance_error
    >>> ft = se.FieldType(se.SO(2), ["trivial", 1, 2])
    >>> act = se.NormNonlinearity(ft, key=jax.random.key(0))
    >>> x = jax.random.normal(jax.random.key(1), (5, 4, 4))
    >>> err = equivariance_error(act, se.C(4), x, jax.random.key(2), rep_in=ft, rep_out=ft)
    >>> print(act(x).shape, bool(err < 1e-12))
    (5, 4, 4) True

    ```
    """

    bias: Float[Array, " fields"]
    field_type: FieldType = eqx.field(static=True)

    def __init__(self, field_type: FieldType, dtype: DTypeLike | None = None, *, key: PRNGKeyArray):
        _need_field_type(field_type, "NormNonlinearity")
        check_param_dtype(dtype, "NormNonlinearity(field_type, dtype=...)")
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

    **Arguments:**

    - `field_type`: the output `FieldType`.

    **Raises:** `ValueError` for a `field_type` that is not a `FieldType`, or (at call time)
    an input of the wrong shape.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> from structjax.check import equivariance_error
    >>> gate = se.GatedFieldNonlinearity(se.FieldType(se.C(4), [1, "regular"]))
    >>> x = jax.random.normal(jax.random.key(0), (gate.in_type.size, 4, 4))
    >>> err = equivariance_error(gate, se.C(4), x, jax.random.key(1), rep_in=gate.in_type,
    ...                          rep_out=gate.field_type)
    >>> print(gate(x).shape, bool(err < 1e-12))
    (6, 4, 4) True

    ```
    """

    field_type: FieldType = eqx.field(static=True)

    def __check_init__(self):
        _need_field_type(self.field_type, "GatedFieldNonlinearity")

    @property
    def in_type(self) -> FieldType:
        """The input type: one trivial gate per gated field, then `field_type`."""
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


class PointwiseNonlinearity(eqx.Module):
    """A pointwise nonlinearity (default ReLU) on trivial and regular fields, whose
    representations are permutations, with which it commutes (Weiler & Cesa 2019).
    Other fields raise a `ValueError`: use `NormNonlinearity` or `GatedFieldNonlinearity`.

    **Arguments:**

    - `field_type`: the `FieldType` of the input and output, of trivial and regular fields.
    - `function`: the elementwise function (default `jax.nn.relu`).

    **Raises:** `ValueError` for a field that is neither trivial nor regular, or (at call time)
    an input of the wrong shape.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> from structjax.check import equivariance_error
    >>> ft = se.FieldType(se.D(4), ["regular", "trivial"])
    >>> act = se.PointwiseNonlinearity(ft)
    >>> x = jax.random.normal(jax.random.key(0), (9, 4, 4))
    >>> err = equivariance_error(act, se.D(4), x, jax.random.key(1), rep_in=ft, rep_out=ft)
    >>> print(bool(err < 1e-12))
    True

    ```
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

    **Arguments:**

    - `field_type`: the input `FieldType`.

    Input `(field_type.size, H, W)`, output `(len(field_type.fields), H, W)`, of type
    `out_type` (all trivial).

    **Raises:** `ValueError` for a `field_type` that is not a `FieldType`, or (at call time)
    an input of the wrong shape.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> from structjax.check import equivariance_error
    >>> pool = se.InvariantPool(se.FieldType(se.C(4), [1, "regular"]))
    >>> x = jax.random.normal(jax.random.key(0), (6, 4, 4))
    >>> err = equivariance_error(pool, se.C(4), x, jax.random.key(1), rep_in=pool.field_type,
    ...                          rep_out=pool.out_type)
    >>> print(pool(x).shape, bool(err < 1e-12))
    (2, 4, 4) True

    ```
    """

    field_type: FieldType = eqx.field(static=True)

    def __check_init__(self):
        _need_field_type(self.field_type, "InvariantPool")

    @property
    def out_type(self) -> FieldType:
        """The output type: one trivial field per input field."""
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
