"""Equivariant linear layers from the constraint's basis, and EMLP (Finzi, Welling & Wilson
2021)."""

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike
from jaxtyping import Array, Float, PRNGKeyArray

from .._groups import Group
from .._guards import check_param_dtype, compute_dtype, in_float32, is_16bit, static_int, upcast
from .._linalg import mm
from ._basis import equivariant_basis
from ._reps import (
    AbstractRep,
    DirectSum,
    Dual,
    Scalar,
    T,
    TensorProduct,
    Vector,
    check_rep_input,
    components,
)


def _offsets(rep):
    out, start = [], 0
    for r, m in components(rep):
        out.append((start, r, m))
        start += r.size * m
    return out


class EquivariantLinear(eqx.Module):
    """$y = W x + b$ with $W$ and $b$ in the span of the equivariant basis, so that
    $\\rho_{out}(g)\\,y(x) = y(\\rho_{in}(g) x)$ for every $g$ of the group, exactly (to
    rounding), for any parameters.

    The input and output are direct sums of components with multiplicities; for each pair of
    components (input type $a$ with $m_a$ copies, output type $b$ with $n_b$ copies) the layer
    holds coefficients $\\theta \\in \\mathbb R^{r \\times n_b \\times m_a}$ on the $r$ basis
    maps of `equivariant_basis(a, b)`: the parameters mix copies freely, the basis carries the
    group structure (EMLP's Sec. 5.2 decomposition, solved per distinct pair, not for the
    whole sum). The bias lies in the invariant vectors of `rep_out`.

    **Arguments:**

    - `rep_in`: the input representation.
    - `rep_out`: the output representation, of the same group.
    - `use_bias`: whether to add an invariant bias.
    - `dtype`: the parameters' real floating dtype (default: JAX's default float); with
        float16/bfloat16 parameters or inputs, $W$ and the product are formed in float32 and
        the output rounded once.
    - `key`: a PRNG key for the initialisation.

    Called on one vector `x` of shape `(rep_in.size,)`, it returns `(rep_out.size,)`.

    Reference: Finzi, Welling & Wilson, "A Practical Method for Constructing Equivariant
    Multilayer Perceptrons of Arbitrary Matrix Groups", ICML 2021, Sec. 5.2.

    **Raises:** `ValueError` if the representations belong to different groups, or if no
    nonzero equivariant map (nor invariant bias) exists between them: the layer would be
    identically zero for any parameters. `TypeError` for a non-float `dtype` or an integer or
    complex input.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> from structjax.check import equivariance_error
    >>> G = se.SO(3)
    >>> layer = se.EquivariantLinear(2 * se.V(G), se.V(G) + se.Scalar(G), key=jax.random.key(0))
    >>> x = jnp.arange(6.0)
    >>> err = equivariance_error(layer, G, x, jax.random.key(1), rep_in=layer.rep_in,
    ...                          rep_out=layer.rep_out)
    >>> print(layer(x).shape, bool(err < 1e-12))
    (4,) True

    ```
    """

    weights: tuple[Array | None, ...]
    biases: tuple[Array | None, ...]
    rep_in: AbstractRep = eqx.field(static=True)
    rep_out: AbstractRep = eqx.field(static=True)

    def __init__(self, rep_in: AbstractRep, rep_out: AbstractRep, use_bias: bool = True,
                 dtype: DTypeLike | None = None, *, key: PRNGKeyArray):  # fmt: skip
        if rep_in.group != rep_out.group:
            raise ValueError(
                f"`EquivariantLinear`: rep_in is a representation of {rep_in.group.name}, "
                f"rep_out of {rep_out.group.name}."
            )
        check_param_dtype(dtype, "EquivariantLinear(rep_in, rep_out, dtype=...)")
        dtype = jnp.dtype(dtype or jnp.result_type(float))
        self.rep_in, self.rep_out = rep_in, rep_out
        fan_in = sum(m * r.size for r, m in components(rep_in))
        shapes, scales, biases = [], [], []
        for b, n in components(rep_out):
            for a, m in components(rep_in):
                r = equivariant_basis(a, b).shape[-1]
                shapes.append((r, n, m) if r else None)
                # Orthonormal basis maps: this keeps E|y|^2 ~ |x|^2 as for a dense layer.
                scales.append(math.sqrt(b.size / (fan_in * max(r, 1))))
            r = equivariant_basis(Scalar(rep_out.group), b).shape[-1] if use_bias else 0
            biases.append(jnp.asarray(np.zeros((r, n)), dtype) if r else None)
        if all(shape is None for shape in shapes) and all(b is None for b in biases):
            raise ValueError(
                f"`EquivariantLinear({_name(rep_in)}, {_name(rep_out)})`: no nonzero linear map "
                f"from rep_in to rep_out commutes with {rep_in.group.name} (and rep_out has no "
                "invariant bias), so the layer would be identically zero for any parameters."
            )
        # One draw for all the blocks, sliced: a draw per block shape would compile one
        # random kernel per shape, seconds of start-up for a wide layer. (16-bit: drawn in
        # float32, rounded.)
        sizes = [math.prod(shape) if shape else 0 for shape in shapes]
        flat = jax.random.normal(key, (max(sum(sizes), 1),), compute_dtype(dtype)).astype(dtype)
        weights, start = [], 0
        for shape, size, scale in zip(shapes, sizes, scales):
            weights.append(scale * flat[start : start + size].reshape(shape) if shape else None)
            start += size
        self.weights, self.biases = tuple(weights), tuple(biases)

    def matrix(self) -> Float[Array, "out in"]:
        """The dense $W$, assembled from the basis: $W_{ba} = \\sum_k \\theta_k \\otimes B_k$
        per pair of components (in the parameters' dtype; formed in float32 for 16-bit
        parameters)."""
        dtype = self._dtype()
        if is_16bit(dtype):
            return upcast(self).matrix().astype(dtype)
        rows = []
        w_iter = iter(self.weights)
        for b, n in components(self.rep_out):
            row = []
            for _, a, m in _offsets(self.rep_in):
                theta = next(w_iter)
                if theta is None:
                    row.append(jnp.zeros((n * b.size, m * a.size), self._dtype()))
                    continue
                basis = jnp.asarray(equivariant_basis(a, b), theta.dtype)  # (b, a, r)
                block = jnp.einsum("kni,bak->nbia", theta, basis)
                row.append(block.reshape(n * b.size, m * a.size))
            rows.append(jnp.concatenate(row, axis=1))
        return jnp.concatenate(rows, axis=0)

    def _dtype(self):
        leaves = [w for w in self.weights + self.biases if w is not None]
        return leaves[0].dtype if leaves else jnp.result_type(float)

    def __call__(
        self, x: Float[Array, " size_in"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, " size_out"]:
        """**Arguments:** `x`, one vector `(rep_in.size,)` (real floating); `key` unused.

        **Returns:** $W x + b$, shape `(rep_out.size,)`.
        """
        del key
        check_rep_input(self.rep_in, x, "EquivariantLinear(...)(x)")
        return self._apply(x)

    @in_float32
    def _apply(self, x):
        # W is formed from the parameters alone, so under `jax.vmap` it is built once for the
        # whole batch and applied as one matrix product (EMLP's W = P w, per call).
        y = mm(self.matrix(), x)
        outs, start = [], 0
        for (b, n), beta in zip(components(self.rep_out), self.biases):
            block = y[start : start + n * b.size]
            if beta is not None:
                u = jnp.asarray(equivariant_basis(Scalar(self.rep_out.group), b)[:, 0], x.dtype)
                block = block + jnp.einsum("kn,bk->nb", beta, u).reshape(-1)
            outs.append(block)
            start += n * b.size
        return jnp.concatenate(outs)


def _name(rep) -> str:
    if isinstance(rep, DirectSum):
        return " + ".join(f"{m}*{_name(r)}" if m > 1 else _name(r) for r, m in rep.parts)
    if isinstance(rep, Scalar):
        return "Scalar"
    if isinstance(rep, Vector):
        return "V"
    if isinstance(rep, Dual):
        return f"{_name(rep.rep)}*"
    if isinstance(rep, TensorProduct):
        return "(" + " x ".join(_name(f) for f in rep.factors) + ")"
    return type(rep).__name__


def _dead_outputs(rep_in: AbstractRep, rep_out: AbstractRep) -> list:
    """The components of `rep_out` that no equivariant linear map from `rep_in`, nor an
    invariant bias, reaches: identically zero in any `EquivariantLinear(rep_in, rep_out)`."""
    scalar = Scalar(rep_out.group)
    return [
        b
        for b, _ in components(rep_out)
        if not any(equivariant_basis(a, b).shape[-1] for a, _ in components(rep_in))
        and not equivariant_basis(scalar, b).shape[-1]
    ]


def _is_scalar(rep) -> bool:
    return isinstance(rep, Scalar)


def gated(rep: AbstractRep) -> AbstractRep:
    """`rep` plus one scalar gate per non-scalar copy (EMLP's `gated`), the input
    representation of a `GatedNonlinearity(rep)`.

    **Arguments:**

    - `rep`: a representation.

    **Returns:** `rep + k * Scalar(G)`, `k` the number of non-scalar copies in `rep` (`rep`
    itself when there are none).

    Reference: Finzi, Welling & Wilson 2021, Sec. 6.

    **Example:**

    ```pycon
    >>> import structjax.equivariant as se
    >>> G = se.SO(3)
    >>> print(se.gated(2 * se.V(G) + se.Scalar(G)).size)  # 7 values, 2 gates
    9

    ```
    """
    gates = sum(m for r, m in components(rep) if not _is_scalar(r))
    return rep + gates * Scalar(rep.group) if gates else rep


class GatedNonlinearity(eqx.Module):
    """The gated nonlinearity of EMLP (Finzi et al. 2021, Sec. 6; Weiler et al. 2018): on
    `gated(rep)`, each non-scalar copy $v$ is multiplied by $\\sigma(s)$ of its own scalar gate
    $s$, and each scalar $s$ becomes $s\\,\\sigma(s)$ (swish). Gates are invariant, so the map
    is equivariant; the output is `rep` (gates dropped).

    **Arguments:**

    - `rep`: the output representation; the input is `gated(rep)`.

    Reference: Finzi, Welling & Wilson 2021, Sec. 6; Weiler, Geiger, Welling, Boomsma & Cohen,
    "3D Steerable CNNs", NeurIPS 2018.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> from structjax.check import equivariance_error
    >>> G = se.SO(3)
    >>> act = se.GatedNonlinearity(se.V(G))
    >>> x = jnp.asarray([1.0, 2.0, 3.0, 0.5])  # a vector and its gate
    >>> err = equivariance_error(act, G, x, jax.random.key(0), rep_in=se.gated(act.rep),
    ...                          rep_out=act.rep)
    >>> print(act(x).shape, bool(err < 1e-12))
    (3,) True

    ```
    """

    rep: AbstractRep = eqx.field(static=True)

    def __call__(
        self, x: Float[Array, " size_gated"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, " size"]:
        """**Arguments:** `x`, one vector `(gated(rep).size,)`; `key` unused.

        **Returns:** the gated values, shape `(rep.size,)`.
        """
        del key
        n_values = self.rep.size
        values, gates = x[:n_values], x[n_values:]
        out, gate_index = [], 0
        for start, r, m in _offsets(self.rep):
            block = values[start : start + m * r.size].reshape(m, r.size)
            if _is_scalar(r):
                out.append((block * jax.nn.sigmoid(block)).reshape(-1))
            else:
                g = gates[gate_index : gate_index + m, None]
                out.append((block * jax.nn.sigmoid(g)).reshape(-1))
                gate_index += m
        return jnp.concatenate(out)


def uniform_rep(channels: int, group: Group, max_rank: int = 2) -> AbstractRep:
    """A hidden representation of about `channels` numbers spread evenly over tensors of rank
    0..`max_rank` (the idea of EMLP's `uniform_rep`): rank $k$ gets
    $\\lfloor channels / ((max\\_rank + 1)\\, d^k) \\rfloor$ copies (at least one).

    **Arguments:**

    - `channels`: about how many numbers, an int >= 1.
    - `group`: the `Group`.
    - `max_rank`: the highest tensor rank, an int >= 0.

    **Returns:** a `DirectSum` of `T(k, 0, group)`, `k = 0..max_rank`.

    **Raises:** `ValueError`/`TypeError` for `channels` or `max_rank` not an int in range.

    Reference: Finzi, Welling & Wilson 2021, Sec. 6 (uniform channel allocation).

    **Example:**

    ```pycon
    >>> import structjax.equivariant as se
    >>> rep = se.uniform_rep(30, se.SO(3), max_rank=1)  # 15 scalars, 5 vectors
    >>> print(rep.size)
    30

    ```
    """
    channels = static_int(channels, f"uniform_rep({channels!r}, ...)", "channels")
    max_rank = static_int(max_rank, f"uniform_rep(max_rank={max_rank!r})", "max_rank", 0)
    d = group.d
    parts = []
    for k in range(max_rank + 1):
        copies = max(1, channels // ((max_rank + 1) * d**k))
        parts.append((T(k, 0, group), copies))
    return DirectSum(parts)


def _is_vector_like(rep) -> bool:
    return isinstance(rep, Vector) or (isinstance(rep, Dual) and isinstance(rep.rep, Vector))


class PairwiseProducts(eqx.Module):
    r"""$x \mapsto (x, \{x_i \otimes x_j\}_{i \le j})$ over the vector-like copies $x_i$ (in
    $V$ or $V^*$) of `rep`: an equivariant quadratic map into `rep` $\oplus \bigoplus
    (a \otimes b)$, after which an `EquivariantLinear` layer reaches every bilinear invariant
    and covariant of the vectors (inner products, Minkowski products, cross products, outer
    products). This is the role of EMLP's bilinear layers (Finzi et al. 2021, Sec. 6): without
    them no linear map takes $O(n)$-vectors to scalars, so an EMLP on vectors would be
    constant. Its output representation is `out_rep`.

    **Arguments:**

    - `rep`: the input representation.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> from structjax.check import equivariance_error
    >>> G = se.O(3)
    >>> prod = se.PairwiseProducts(2 * se.V(G))
    >>> x = jnp.arange(6.0)
    >>> err = equivariance_error(prod, G, x, jax.random.key(0), rep_in=prod.rep,
    ...                          rep_out=prod.out_rep)
    >>> print(prod(x).shape, bool(err < 1e-12))
    (33,) True

    ```
    """

    rep: AbstractRep = eqx.field(static=True)
    out_rep: AbstractRep = eqx.field(static=True)
    _copies: tuple[tuple[int, int], ...] = eqx.field(static=True)  # (offset, size) per copy

    def __init__(self, rep: AbstractRep):
        copies, types = [], []
        for start, r, m in _offsets(rep):
            if _is_vector_like(r):
                copies += [(start + i * r.size, r.size) for i in range(m)]
                types += [r] * m
        pairs = [(a, b) for i, a in enumerate(types) for b in types[i:]]
        self.rep, self._copies = rep, tuple(copies)
        parts = [(r, m) for r, m in components(rep)]
        parts += [(TensorProduct((a, b)), 1) for a, b in pairs]
        self.out_rep = DirectSum(parts)

    def __call__(self, x: Float[Array, " size"]) -> Float[Array, " size_out"]:
        """**Arguments:** `x`, one vector `(rep.size,)`.

        **Returns:** `x` followed by the flattened products, shape `(out_rep.size,)`.
        """
        vecs = [x[s : s + n] for s, n in self._copies]
        products = [jnp.outer(u, v).reshape(-1) for i, u in enumerate(vecs) for v in vecs[i:]]
        return jnp.concatenate([x, *products])


class EMLP(eqx.Module):
    """An equivariant MLP (Finzi, Welling & Wilson 2021): each block is `PairwiseProducts`
    (the bilinear part), an `EquivariantLinear` layer into the gated hidden representation,
    and a `GatedNonlinearity`; then an equivariant linear read-out. Works for any group of
    `structjax.equivariant`.

    **Arguments:**

    - `rep_in`: the input representation.
    - `rep_out`: the output representation, of the same group.
    - `hidden`: the hidden representation, or an int: the size of a `uniform_rep`.
    - `num_layers`: the number of hidden blocks, an int >= 1.
    - `dtype`: the parameters' real floating dtype (16-bit parameters or inputs: the network
        runs in float32 and rounds its output once).
    - `key`: a PRNG key for the initialisation.

    Reference: Finzi, Welling & Wilson, "A Practical Method for Constructing Equivariant
    Multilayer Perceptrons of Arbitrary Matrix Groups", ICML 2021, Sec. 6.

    **Raises:** `ValueError` when a component of `rep_out` cannot be reached from `hidden`
    by any equivariant linear map (e.g. an all-scalar `hidden` and a vector output: invariant
    features carry no direction), since that part of the output would be identically zero for
    any weights. EMLP's reference code builds such a network silently (its `Linear` projects
    onto an empty basis); here it is refused, with the fix: give `hidden` components of the
    output's types (an int `hidden` does, through `uniform_rep`). `TypeError` for a `hidden`
    that is neither.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> from structjax.check import equivariance_error
    >>> G = se.SO(3)
    >>> net = se.EMLP(2 * se.V(G), se.V(G), hidden=16, num_layers=1, key=jax.random.key(0))
    >>> x = jnp.arange(6.0) / 6
    >>> err = equivariance_error(net, G, x, jax.random.key(1), rep_in=2 * se.V(G),
    ...                          rep_out=se.V(G))
    >>> print(net(x).shape, bool(err < 1e-10))
    (3,) True

    ```
    """

    products: tuple[PairwiseProducts, ...]
    layers: tuple[EquivariantLinear, ...]
    nonlinearities: tuple[GatedNonlinearity, ...]
    rep_in: AbstractRep = eqx.field(static=True)

    def __init__(self, rep_in: AbstractRep, rep_out: AbstractRep,
                 hidden: AbstractRep | int = 128, num_layers: int = 2,
                 dtype: DTypeLike | None = None, *,
                 key: PRNGKeyArray):  # fmt: skip
        num_layers = static_int(num_layers, f"EMLP(num_layers={num_layers!r})", "num_layers")
        check_param_dtype(dtype, "EMLP(rep_in, rep_out, dtype=...)")
        if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
            hidden = uniform_rep(hidden, rep_in.group)
        if not isinstance(hidden, AbstractRep):
            raise TypeError(
                f"`EMLP(hidden={hidden!r})` needs a representation or an int (the size of a "
                "`uniform_rep`)."
            )
        dead = _dead_outputs(hidden, rep_out)
        if dead:
            raise ValueError(
                f"`EMLP(rep_in={_name(rep_in)}, rep_out={_name(rep_out)}, "
                f"hidden={_name(hidden)})`: no equivariant linear map of "
                f"{rep_in.group.name} takes the hidden representation to the output "
                f"component(s) {', '.join(_name(b) for b in dead)}, so that part of the output "
                "would be identically zero for any weights (all-scalar hidden features carry "
                "no direction). Give `hidden` components of the output's types, e.g. "
                "`hidden=uniform_rep(128, G)` or an int."
            )
        keys = jax.random.split(key, num_layers + 1)
        reps: Sequence[AbstractRep] = [rep_in] + [hidden] * num_layers
        self.products = tuple(PairwiseProducts(r) for r in reps[:-1])
        self.layers = tuple(
            EquivariantLinear(p.out_rep, gated(hidden), dtype=dtype, key=k)
            for p, k in zip(self.products, keys)
        ) + (EquivariantLinear(hidden, rep_out, dtype=dtype, key=keys[-1]),)
        self.nonlinearities = (GatedNonlinearity(hidden),) * num_layers
        self.rep_in = rep_in

    def __call__(
        self, x: Float[Array, " size_in"], *, key: PRNGKeyArray | None = None
    ) -> Float[Array, " size_out"]:
        """**Arguments:** `x`, one vector `(rep_in.size,)`; `key` unused.

        **Returns:** the output, shape `(rep_out.size,)`.
        """
        del key
        check_rep_input(self.rep_in, x, "EMLP(...)(x)")
        return self._apply(x)

    @in_float32
    def _apply(self, x):
        for products, layer, act in zip(self.products, self.layers[:-1], self.nonlinearities):
            x = act(layer(products(x)))
        return self.layers[-1](x)
