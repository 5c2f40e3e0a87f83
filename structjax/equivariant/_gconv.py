"""Group convolutions on the plane for the wallpaper groups p4 and p4m (Cohen & Welling 2016,
"Group equivariant convolutional networks", ICML): translations composed with the point group
$C_4$ (rotations by multiples of 90°) or $D_4$ (those and the reflections).

**Conventions.** Pixel $(i, j)$ (row, column) of an $n \\times n$ image is the point
$p = (j - c,\\ c - i)$ of the plane, $c = (n - 1)/2$: $x$ to the right, $y$ up, origin at the
image centre. A point-group element $g$ is its $2 \\times 2$ matrix (as `C(4).sample` and
`D(4).sample` return it) and acts on images and on group feature maps by
$$(g \\cdot f)(p) = f(g^{-1} p), \\qquad (g \\cdot F)(s, p) = F(g^{-1} s,\\ g^{-1} p),$$
both left actions: $g \\cdot (h \\cdot f) = (gh) \\cdot f$. The rotation by $+90°$,
$R = \\begin{pmatrix} 0 & -1 \\\\ 1 & 0 \\end{pmatrix}$, acts on an image as `jnp.rot90(f)`
(counter-clockwise), the reflection $S = \\mathrm{diag}(-1, 1)$ as `jnp.flip(f, -1)` (mirror
left-right). The group axis of a feature map of shape `(channels, |G|, H, W)` is ordered as
`group_elements` lists it: index $e = k + 4m$ holds $R^k S^m$.

**Exactness.** The layers commute with the actions exactly (to rounding) for square inputs of
any size: with stride 1, an odd kernel and 'SAME' zero padding, the pixel grid and its padding
are mapped onto themselves by every element of $D_4$ acting about the image centre. Rotating a
non-square image changes its shape, an even kernel has no centre pixel, and a subsampling you
add between layers must keep the grid symmetric (stride 2 on an $n \\times n$ map is exact
for odd $n$ only, which keeps pixels $0, 2, \\dots, n - 1$).
"""

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._groups import C, D, Group
from .._guards import check_param_dtype, check_real_floating, guard, is_traced, static_int

# R^k S^m at index k + 4m: the group axis order of every feature map.
_R = np.array([[0, -1], [1, 0]])
_S = np.array([[-1, 0], [0, 1]])
_ELEMENTS = np.stack(
    [
        np.linalg.matrix_power(_R, k) @ np.linalg.matrix_power(_S, m)
        for m in (0, 1)
        for k in range(4)
    ]
)
_INDEX = {tuple(a.ravel()): e for e, a in enumerate(_ELEMENTS)}
# _PERM[h, e] = index of h^{-1} g_e (h^{-1} = h^T): (h . F)[e] = h . F[_PERM[h, e]] in space.
_PERM = np.array([[_INDEX[tuple((a.T @ b).ravel())] for b in _ELEMENTS] for a in _ELEMENTS])
_NAMES = {"c4": 4, "p4": 4, "d4": 8, "p4m": 8}


def _order_of(group, caller: str) -> int:
    """4 for $C_4$, 8 for $D_4$, given as a `Group` (any generators) or by name."""
    hint = "pass `C(4)` or 'p4' (rotations), `D(4)` or 'p4m' (rotations and reflections)"
    if isinstance(group, str):
        if group.lower() in _NAMES:
            return _NAMES[group.lower()]
        raise ValueError(f"`{caller}(group={group!r})`: unknown group name; {hint}.")
    if not isinstance(group, Group):
        raise ValueError(f"`{caller}(group={group!r})` needs a `Group` or a name; {hint}.")
    gens = group.discrete_generators
    if group.d == 2 and group.lie_algebra.shape[0] == 0 and np.allclose(gens, np.round(gens)):
        found = {_INDEX.get(tuple(np.round(a).astype(int).ravel())) for a in gens} | {0}
        while None not in found:  # the closure, inside D4
            products = {
                _INDEX[tuple((_ELEMENTS[a] @ _ELEMENTS[b]).ravel())] for a in found for b in found
            }
            if products <= found:
                break
            found |= products
        if found in (set(range(4)), set(range(8))):
            return len(found)
    raise ValueError(
        f"`{caller}(group={group.name})`: only the point groups of p4 and p4m, C4 and D4 acting "
        f"on the plane, are supported; {hint}."
    )


def group_elements(group: Group | str) -> Int[Array, "order 2 2"]:
    """The elements of $C_4$ (4) or $D_4$ (8) as $2 \\times 2$ matrices, in the order of the
    group axis of feature maps: index $k + 4m$ is $R^k S^m$, $R$ the rotation by $+90°$ and
    $S = \\mathrm{diag}(-1, 1)$.

    **Arguments:**

    - `group`: `C(4)`, `D(4)` or a name ('p4', 'C4', 'p4m', 'D4').

    **Returns:** an integer array of shape `(|G|, 2, 2)`.

    **Raises:** `ValueError` for another group or an unknown name.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> els = se.group_elements("p4m")
    >>> print(els.shape, bool(jnp.all(jnp.abs(jnp.linalg.det(els.astype(float))) == 1.0)))
    (8, 2, 2) True

    ```
    """
    return jnp.asarray(_ELEMENTS[: _order_of(group, "group_elements")])


def _membership_message(call: str, order: int) -> str:
    name = "C4 (a rotation by a multiple of 90°)" if order == 4 else "D4"
    return (
        f"`{call}` needs `g` to be an element of {name}: one of the {order} matrices of "
        f"`group_elements`, within 1e-3."
    )


def _decode(g: Array, order: int, call: str, checks: bool) -> Array:
    """The index $e$ of the element $g$ (traced) in `_ELEMENTS`, guarded by a runtime check
    that $g$ is an element of the group of that order (on the index, a scalar that selects
    the branch: the check stays live and costs no copy of the images)."""
    gi = jnp.round(g)
    det = gi[0, 0] * gi[1, 1] - gi[0, 1] * gi[1, 0]
    m = (det < 0).astype(jnp.int32)  # R^k S^m has det (-1)^m and second row (+-sin, cos)
    cos, sin = gi[1, 1], jnp.where(m == 1, -gi[1, 0], gi[1, 0])
    k = jnp.where(cos > 0.5, 0, jnp.where(sin > 0.5, 1, jnp.where(cos < -0.5, 2, 3)))
    e = k.astype(jnp.int32) + 4 * m
    off = jnp.max(jnp.abs(g - jnp.asarray(_ELEMENTS, g.dtype)[e])) > 1e-3
    return guard(e, off | (e >= order), _membership_message(call, order), checks=checks)


def _image_static(e: int, x: Array) -> Array:
    k, m = e % 4, e // 4
    return jnp.rot90(jnp.flip(x, -1) if m else x, k, axes=(-2, -1))


def _features_static(e: int, x: Array) -> Array:
    return _image_static(e, jnp.take(x, jnp.asarray(_PERM[e, : x.shape[-3]]), axis=-3))


_IMAGE_BRANCHES = tuple(functools.partial(_image_static, e) for e in range(8))
_FEATURE_BRANCHES = tuple(functools.partial(_features_static, e) for e in range(8))


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _rotate(g, x, order: int, branches, call: str, checks: bool):
    # Jitted, so that eager calls compile once per shape (an eager `lax.switch` would retrace
    # its branches on every call); inside a user's jit/vmap it is inlined.
    return jax.lax.switch(_decode(g, order, call, checks), branches, x)


def _check_element(g, order: int, call: str, checks: bool):
    """Trace time: `g` is a real 2 x 2 matrix. Eagerly (a concrete `g`): it is an element of
    the group, else a `ValueError` now (under `jit` the same check runs in `_decode`)."""
    if jnp.shape(g) != (2, 2):
        raise ValueError(f"`{call}` needs `g` of shape (2, 2), got shape {jnp.shape(g)}.")
    if jnp.issubdtype(jnp.result_type(g), jnp.complexfloating):
        check_real_floating(g, call, "g")
    if checks and not is_traced(g):
        a = np.asarray(g, np.float64)
        off = np.abs(a[None] - _ELEMENTS[:order]).max(axis=(1, 2)).min()
        guard(None, off > 1e-3, _membership_message(call, order), found=a.tolist())


def _check_square(x: Array, name: str, min_ndim: int):
    if x.ndim < min_ndim or x.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"`{name}(g, x)` acts on square images about their centre: `x` needs at least "
            f"{min_ndim} axes and equal last two, got shape {x.shape}."
        )


def rotate_image(
    g: Float[Array, "2 2"], x: Float[Array, "*batch h w"], *, checks: bool = True
) -> Float[Array, "*batch h w"]:
    """$(g \\cdot x)(p) = x(g^{-1} p)$: an element $g$ of $D_4$ (a $2 \\times 2$ matrix,
    possibly traced) acting on square images about their centre, exactly, by `jnp.rot90` and
    `jnp.flip`. $R$ (rotation by $+90°$) is `jnp.rot90(x)`, $\\mathrm{diag}(-1, 1)$ is
    `jnp.flip(x, -1)`.

    **Arguments:**

    - `g`: a `(2, 2)` element of $D_4$.
    - `x`: images, shape `(..., n, n)`.
    - `checks`: refuse a `g` outside $D_4$ (default; `False` skips the test and uses the
        nearest element's index).

    **Returns:** the transformed images, shape of `x`.

    **Raises:** `ValueError` for a `g` outside $D_4$ (eagerly; under `jit` a runtime error
    with the same message), a `g` not `(2, 2)` or a non-square `x`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> R = jnp.asarray([[0.0, -1.0], [1.0, 0.0]])
    >>> x = jnp.arange(9.0).reshape(3, 3)
    >>> y = se.rotate_image(R, x)
    >>> back = se.rotate_image(R.T, y)  # R^T = R^{-1}
    >>> print(bool(jnp.array_equal(y, jnp.rot90(x))), bool(jnp.array_equal(back, x)))
    True True

    ```
    """
    x = jnp.asarray(x)
    _check_square(x, "rotate_image", 2)
    _check_element(g, 8, "rotate_image(g, x)", checks)
    return _rotate(g, x, 8, _IMAGE_BRANCHES, "rotate_image(g, x)", checks)


def rotate_group_features(
    g: Float[Array, "2 2"], x: Float[Array, "*batch order h w"], *, checks: bool = True
) -> Float[Array, "*batch order h w"]:
    """$(g \\cdot F)(s, p) = F(g^{-1} s, g^{-1} p)$: the action of $g \\in G$ on feature maps
    on $p4$ ($G = C_4$, `|G| = 4`) or $p4m$ ($D_4$, 8), what `LiftingConv` and `GroupConv`
    are equivariant to: the image action on the last two axes and the regular representation
    (a permutation) on the group axis, `(g . F)[e] = rotate_image(g, F[index of g^{-1} g_e])`
    with $g_e$ = `group_elements(group)[e]`.

    **Arguments:**

    - `g`: a `(2, 2)` element of $G$ (in $C_4$ when `|G| = 4`).
    - `x`: feature maps, shape `(..., |G|, n, n)`.
    - `checks`: as in `rotate_image`.

    **Returns:** the transformed feature maps, shape of `x`.

    **Raises:** as `rotate_image`, for $G$ = $C_4$ or $D_4$; and `ValueError` for a group
    axis of another size.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> els = se.group_elements("p4")
    >>> g, h = els[1].astype(float), els[2].astype(float)
    >>> F = jax.random.normal(jax.random.key(0), (4, 5, 5))
    >>> act = se.rotate_group_features  # a left action: g . (h . F) = (g h) . F
    >>> print(bool(jnp.allclose(act(g, act(h, F)), act(g @ h, F))))
    True

    ```
    """
    x = jnp.asarray(x)
    _check_square(x, "rotate_group_features", 3)
    order = x.shape[-3]
    if order not in (4, 8):
        raise ValueError(
            f"`rotate_group_features(g, x)` needs a group axis of size 4 (C4) or 8 (D4) third "
            f"from last in `x`, got shape {x.shape}."
        )
    call = "rotate_group_features(g, x)"
    _check_element(g, order, call, checks)
    return _rotate(g, x, order, _FEATURE_BRANCHES[:order], call, checks)


def _init(key, shape, fan_in: int, use_bias: bool, out_channels: int, dtype):
    # As `eqx.nn.Conv`: uniform in +-1/sqrt(fan_in), for the weight and the bias. Drawn flat
    # and reshaped: on CPU a multi-axis draw compiles several times slower.
    dtype = dtype or jnp.result_type(float)
    wkey, bkey = jax.random.split(key)
    lim = float(1 / np.sqrt(fan_in))
    weight = jax.random.uniform(wkey, (math.prod(shape),), dtype, -lim, lim).reshape(shape)
    bias = jax.random.uniform(bkey, (out_channels,), dtype, -lim, lim) if use_bias else None
    return weight, bias


def _check_sizes(caller: str, in_channels, out_channels, kernel_size, dtype=None):
    call = f"{caller}({in_channels!r}, {out_channels!r}, {kernel_size!r})"
    for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
        if static_int(v, call, name, minimum=0) < 1:
            raise ValueError(f"`{caller}({in_channels}, {out_channels}, ...)` needs positive "
                             "channels.")  # fmt: skip
    kernel_size = static_int(kernel_size, call, "kernel_size", minimum=0)
    check_param_dtype(dtype, call)
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"`{caller}(kernel_size={kernel_size})` needs an odd kernel_size >= 1: an even kernel "
            "has no centre pixel to rotate about, and its 'SAME' padding is lopsided."
        )
    return int(in_channels), int(out_channels), kernel_size


def _conv(x, kernels, bias, out_channels: int, order: int):
    """Correlate `x` (c, H, W) with `kernels` (out, |G|, ...) stacked over the group axis."""
    w = kernels.reshape(out_channels * order, -1, *kernels.shape[-2:])
    y = jax.lax.conv_general_dilated(
        x[None],
        w,
        (1, 1),
        "SAME",
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
        # full float32 on GPUs/TPUs too (their default TF32/bf16 passes would cost the
        # 1e-5 float32 equivariance), as `manifolds._base.mm`
        precision=jax.lax.Precision.HIGHEST,
    )[0]
    y = y.reshape(out_channels, order, *y.shape[-2:])
    return y if bias is None else y + bias[:, None, None, None]


class LiftingConv(eqx.Module):
    """The lifting layer of a G-CNN (Cohen & Welling 2016, eq. (10)): correlation of an image
    with every transformed copy of a filter, giving a feature map on $p4$ or $p4m$:
    $$[f \\star \\psi](g, p) = \\sum_{q \\in \\mathbb Z^2} \\sum_{c} f_c(p + q)\\,
    \\psi_c(g^{-1} q) + b, \\qquad g \\in G,$$
    one filter per output channel, rotated (and reflected) by `rotate_image`, and one bias
    per output channel shared over $G$. It is equivariant:
    `layer(rotate_image(g, x)) == rotate_group_features(g, layer(x))`.

    **Arguments:**

    - `group`: `C(4)`, `D(4)` or 'p4', 'p4m'.
    - `in_channels`: the input image's channels.
    - `out_channels`: the output channels.
    - `kernel_size`: the filters' (odd) size.
    - `use_bias`: whether to add a bias per output channel.
    - `dtype`: the parameters' real floating dtype.
    - `key`: a PRNG key for the initialisation.

    Input `(in_channels, n, n)`, output `(out_channels, |G|, n, n)` ('SAME' padding, stride 1).

    **Raises:** `ValueError` for an unknown group, sizes that are not positive ints, an even
    `kernel_size`, or (at call time) an input of the wrong shape.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> layer = se.LiftingConv("p4", 1, 2, 3, key=jax.random.key(0))
    >>> x = jax.random.normal(jax.random.key(1), (1, 5, 5))
    >>> g = se.group_elements("p4")[1].astype(float)
    >>> lhs, rhs = layer(se.rotate_image(g, x)), se.rotate_group_features(g, layer(x))
    >>> print(layer(x).shape, bool(jnp.allclose(lhs, rhs, atol=1e-12)))
    (2, 4, 5, 5) True

    ```
    """

    weight: Float[Array, "out in k k"]
    bias: Float[Array, " out"] | None
    order: int = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    kernel_size: int = eqx.field(static=True)

    def __init__(
        self,
        group: Group | str,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        use_bias: bool = True,
        dtype: DTypeLike | None = None,
        *,
        key: PRNGKeyArray,
    ):
        self.order = _order_of(group, "LiftingConv")
        _check_sizes("LiftingConv", in_channels, out_channels, kernel_size, dtype)
        in_channels, out_channels, kernel_size = (
            int(in_channels),
            int(out_channels),
            int(kernel_size),
        )
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        fan_in = in_channels * kernel_size**2
        self.weight, self.bias = _init(key, shape, fan_in, use_bias, out_channels, dtype)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel_size

    @property
    def group(self) -> Group:
        """The point group, `C(4)` or `D(4)`."""
        return C(4) if self.order == 4 else D(4)

    def __call__(
        self, x: Float[Array, "..."], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "out order h w"]:
        del key
        if x.ndim != 3 or x.shape[0] != self.in_channels:
            raise ValueError(
                f"`LiftingConv(in_channels={self.in_channels}, ...)` takes one image of shape "
                f"({self.in_channels}, H, W), got {x.shape} (batch with `jax.vmap`)."
            )
        check_real_floating(x, "LiftingConv(...)(x)", "x")
        kernels = jnp.stack([_image_static(e, self.weight) for e in range(self.order)], axis=1)
        return _conv(x, kernels, self.bias, self.out_channels, self.order)


class GroupConv(eqx.Module):
    """A group convolution on $p4$ or $p4m$ (Cohen & Welling 2016, eq. (11)): correlation of
    a feature map on the group with every transformed copy of a filter on the group,
    $$[F \\star \\psi](g, p) = \\sum_{s \\in G} \\sum_{q \\in \\mathbb Z^2} \\sum_{c}
    F_c(s, p + q)\\, \\psi_c(g^{-1} s,\\ g^{-1} q) + b,$$
    the filters transformed by `rotate_group_features` (rotated in space, permuted along the
    group axis) and one bias per output channel shared over $G$. It is equivariant:
    `layer(rotate_group_features(g, x)) == rotate_group_features(g, layer(x))`.

    **Arguments:**

    - `group`: `C(4)`, `D(4)` or 'p4', 'p4m'.
    - `in_channels`: the input feature map's channels.
    - `out_channels`: the output channels.
    - `kernel_size`: the filters' (odd) size.
    - `use_bias`: whether to add a bias per output channel.
    - `dtype`: the parameters' real floating dtype.
    - `key`: a PRNG key for the initialisation.

    Input `(in_channels, |G|, n, n)`, output `(out_channels, |G|, n, n)` ('SAME' padding,
    stride 1).

    **Raises:** `ValueError` for an unknown group, sizes that are not positive ints, an even
    `kernel_size`, or (at call time) an input of the wrong shape.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> layer = se.GroupConv("p4m", 2, 3, 3, key=jax.random.key(0))
    >>> x = jax.random.normal(jax.random.key(1), (2, 8, 5, 5))
    >>> g = se.group_elements("p4m")[5].astype(float)
    >>> act = se.rotate_group_features
    >>> print(layer(x).shape, bool(jnp.allclose(layer(act(g, x)), act(g, layer(x)), atol=1e-12)))
    (3, 8, 5, 5) True

    ```
    """

    weight: Float[Array, "out in order k k"]
    bias: Float[Array, " out"] | None
    order: int = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    kernel_size: int = eqx.field(static=True)

    def __init__(
        self,
        group: Group | str,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        use_bias: bool = True,
        dtype: DTypeLike | None = None,
        *,
        key: PRNGKeyArray,
    ):
        self.order = _order_of(group, "GroupConv")
        _check_sizes("GroupConv", in_channels, out_channels, kernel_size, dtype)
        in_channels, out_channels, kernel_size = (
            int(in_channels),
            int(out_channels),
            int(kernel_size),
        )
        shape = (out_channels, in_channels, self.order, kernel_size, kernel_size)
        fan_in = in_channels * self.order * kernel_size**2
        self.weight, self.bias = _init(key, shape, fan_in, use_bias, out_channels, dtype)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = kernel_size

    @property
    def group(self) -> Group:
        """The point group, `C(4)` or `D(4)`."""
        return C(4) if self.order == 4 else D(4)

    def __call__(
        self, x: Float[Array, "..."], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "out order h w"]:
        del key
        if x.ndim != 4 or x.shape[:2] != (self.in_channels, self.order):
            raise ValueError(
                f"`GroupConv(in_channels={self.in_channels}, ...)` on a group of order "
                f"{self.order} takes one feature map of shape ({self.in_channels}, {self.order}, "
                f"H, W), got {x.shape} (batch with `jax.vmap`)."
            )
        check_real_floating(x, "GroupConv(...)(x)", "x")
        kernels = jnp.stack([_features_static(e, self.weight) for e in range(self.order)], axis=1)
        x = x.reshape(-1, *x.shape[-2:])
        return _conv(x, kernels, self.bias, self.out_channels, self.order)


_REDUCTIONS = {"max": jnp.max, "mean": jnp.mean}


def _check_reduction(caller: str, reduction: str):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"`{caller}(reduction={reduction!r})` must be 'max' or 'mean'.")


class GroupPool(eqx.Module):
    """Pooling over the group axis (Cohen & Welling 2016, Sec. 6, "coset pooling" over the whole
    point group): $y_c(p) = \\max_{s \\in G} F_c(s, p)$ (or the mean), a map from
    feature maps on $p4$/$p4m$ to images that turns `rotate_group_features` into
    `rotate_image`. Follow it by `GlobalPool` for invariant features.

    **Arguments:**

    - `reduction`: 'max' (default) or 'mean'.

    Input `(channels, |G|, H, W)`, output `(channels, H, W)`.

    **Raises:** `ValueError` for another `reduction`, or (at call time) a group axis not of
    size 4 or 8.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> F = jax.random.normal(jax.random.key(0), (2, 4, 5, 5))
    >>> g = se.group_elements("p4")[1].astype(float)
    >>> pool = se.GroupPool()
    >>> lhs, rhs = pool(se.rotate_group_features(g, F)), se.rotate_image(g, pool(F))
    >>> print(pool(F).shape, bool(jnp.allclose(lhs, rhs)))
    (2, 5, 5) True

    ```
    """

    reduction: str = eqx.field(static=True)

    def __init__(self, reduction: str = "max"):
        _check_reduction("GroupPool", reduction)
        self.reduction = reduction

    def __call__(
        self, x: Float[Array, "..."], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "c h w"]:
        del key
        if x.ndim != 4 or x.shape[1] not in (4, 8):
            raise ValueError(
                f"`GroupPool` takes one feature map of shape (channels, |G|, H, W) with |G| = 4 "
                f"or 8, got {x.shape} (batch with `jax.vmap`)."
            )
        return _REDUCTIONS[self.reduction](x, axis=1)


class GlobalPool(eqx.Module):
    """Pooling over the two spatial axes, $y = \\max_p x(p)$ (or the mean): invariant to any
    permutation of the pixels, so after `GroupPool` the features are invariant to $C_4$/$D_4$
    rotating (reflecting) the input image about its centre (the end of a G-CNN classifier;
    translations are symmetries only up to the image boundary).

    **Arguments:**

    - `reduction`: 'mean' (default) or 'max'.

    Input `(..., H, W)`, output `(...)`.

    **Raises:** `ValueError` for another `reduction`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> x = jax.random.normal(jax.random.key(0), (3, 5, 5))
    >>> g = se.group_elements("p4m")[6].astype(float)
    >>> pool = se.GlobalPool("max")
    >>> print(pool(x).shape, bool(jnp.allclose(pool(se.rotate_image(g, x)), pool(x))))
    (3,) True

    ```
    """

    reduction: str = eqx.field(static=True)

    def __init__(self, reduction: str = "mean"):
        _check_reduction("GlobalPool", reduction)
        self.reduction = reduction

    def __call__(
        self, x: Float[Array, "*c h w"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, "*c"]:
        del key
        return _REDUCTIONS[self.reduction](x, axis=(-2, -1))
