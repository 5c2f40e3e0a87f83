"""E(n)-equivariant graph neural networks (Satorras, Hoogeboom & Welling 2021, "E(n)
equivariant graph neural networks", ICML, eqs. (3)-(6)): message passing on a point cloud whose
node features are E(n)-invariant and whose coordinates move E(n)-equivariantly.

A graph is one example: node features `h` of shape `(N, F)`, coordinates `x` of shape `(N, n)`,
fully connected (as in the paper's n-body experiments), with optional invariant edge attributes
`(N, N, A)` and a boolean `mask` `(N,)` marking the real nodes of a padded graph. Graphs of one
size `N` are batched with `jax.vmap`. The layers follow the authors' code (`egnn_clean.py`,
`E_GCL` and `EGNN`): two-layer SiLU MLPs and a coordinate head initialised small.
"""

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from .._guards import check_param_dtype, check_real_floating, guard, point_tolerance
from .._linalg import mm

# The authors initialise the last layer of phi_x with xavier_uniform_(gain=0.001), so that
# coordinates move little at initialisation (E_GCL in `egnn_clean.py`).
_COORD_GAIN = 1e-3


def euclidean_action(
    g: Float[Array, "_d _d"], graph: tuple[PyTree, Float[Array, "... _n"]], *, checks: bool = True
) -> tuple[PyTree, Float[Array, "... _n"]]:
    """The action of $E(n)$ on a graph $(h, x)$: features are invariant and each coordinate
    row moves as $x_i \\mapsto R x_i + t$, i.e. $x \\mapsto x R^\\top + t$, for the homogeneous
    matrix $g = \\begin{pmatrix} R & t \\\\ 0 & 1 \\end{pmatrix}$ of `structjax.equivariant.E`.

    **Arguments:**

    - `g`: an $(n+1) \\times (n+1)$ element of $E(n)$ (homogeneous coordinates).
    - `graph`: a pair `(h, x)`: node features (any pytree, left unchanged) and coordinates
        `x` of shape `(..., N, n)`.
    - `checks`: whether to test that `g` is in $E(n)$.

    **Returns:** `(h, x R^T + t)`. Use it as `rep_in`/`rep_out` of
    `structjax.check.equivariance_error`.

    **Raises:** `ValueError` for a `g` of the wrong shape, or one that is not in $E(n)$
    ($R$ orthogonal and last row $(0, \\dots, 0, 1)$, within the dtype's point tolerance:
    eagerly, or as a runtime error under `jit`; `checks=False` skips it); `TypeError` for
    integer or complex coordinates.

    Reference: Satorras, Hoogeboom & Welling, "E(n) Equivariant Graph Neural Networks", ICML
    2021, Sec. 3.1.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> g = se.E(3).sample(jax.random.key(0))
    >>> h, x = jnp.ones((4, 2)), jax.random.normal(jax.random.key(1), (4, 3))
    >>> _, y = se.euclidean_action(g, (h, x))
    >>> d = lambda z: jnp.linalg.norm(z[0] - z[1])  # distances are preserved
    >>> print(y.shape, bool(jnp.isclose(d(y), d(x), atol=1e-12)))
    (4, 3) True

    ```
    """
    h, x = graph
    n = jnp.shape(x)[-1]
    if jnp.shape(g) != (n + 1, n + 1):
        raise ValueError(
            f"`euclidean_action(g, (h, x))`: coordinates in R^{n} need an element of E({n}) of "
            f"shape {(n + 1, n + 1)}, got g of shape {jnp.shape(g)}."
        )
    check_real_floating(x, "euclidean_action(g, (h, x))", "x")
    check_real_floating(g, "euclidean_action(g, (h, x))", "g")
    if checks:
        rot = g[:n, :n]
        tol = point_tolerance(jnp.result_type(g), (n + 1) ** 2)
        eye = jnp.eye(n, dtype=rot.dtype)
        off = jnp.maximum(
            jnp.max(jnp.abs(mm(rot.T, rot) - eye)),
            jnp.max(jnp.abs(g[n] - jnp.eye(n + 1, dtype=g.dtype)[n])),
        )
        g = guard(
            g,
            off > tol,
            f"`euclidean_action(g, (h, x))` needs `g` in E({n}): R = g[:{n}, :{n}] orthogonal "
            f"and last row (0, ..., 0, 1), within {tol:.0e}.",
            found=off,
        )
    return h, mm(x, g[:n, :n].T) + g[:n, n]


def _check_graph(call: str, h, x, mask, edge_attr, feature_size, spatial_dim, edge_attr_size):
    """Trace-time checks that `(h, x, mask, edge_attr)` is one graph; returns its size N."""
    batch = "; batch graphs of one size with `jax.vmap`"
    if jnp.ndim(h) != 2 or jnp.shape(h)[1] != feature_size:
        raise ValueError(
            f"`{call}(h, x)` takes node features h of shape (N, {feature_size}), got shape "
            f"{jnp.shape(h)}{batch}."
        )
    if jnp.ndim(x) != 2 or jnp.shape(x)[1] != spatial_dim:
        raise ValueError(
            f"`{call}(h, x)` takes coordinates x of shape (N, {spatial_dim}), got shape "
            f"{jnp.shape(x)}{batch}."
        )
    check_real_floating(h, f"{call}(h, x)", "h")
    check_real_floating(x, f"{call}(h, x)", "x")
    if edge_attr is not None:
        check_real_floating(edge_attr, f"{call}(h, x, mask, edge_attr)", "edge_attr")
    n_nodes = jnp.shape(h)[0]
    if jnp.shape(x)[0] != n_nodes:
        raise ValueError(
            f"`{call}(h, x)`: h has {n_nodes} nodes (shape {jnp.shape(h)}) but x has "
            f"{jnp.shape(x)[0]} (shape {jnp.shape(x)}); both need one row per node."
        )
    if mask is not None and (jnp.shape(mask) != (n_nodes,) or jnp.result_type(mask) != jnp.bool_):
        raise ValueError(
            f"`{call}(h, x, mask)` takes a boolean mask of shape ({n_nodes},) marking the real "
            f"nodes, got {jnp.result_type(mask)} of shape {jnp.shape(mask)}."
        )
    if edge_attr_size == 0 and edge_attr is not None:
        raise ValueError(
            f"`{call}` was built with edge_attr_size=0 but was given edge_attr of shape "
            f"{jnp.shape(edge_attr)}; build it with edge_attr_size={jnp.shape(edge_attr)[-1]}."
        )
    shape = (n_nodes, n_nodes, edge_attr_size)
    if edge_attr_size and (edge_attr is None or jnp.shape(edge_attr) != shape):
        got = None if edge_attr is None else jnp.shape(edge_attr)
        raise ValueError(
            f"`{call}(h, x, mask, edge_attr)` was built with edge_attr_size={edge_attr_size} "
            f"and needs edge_attr of shape {shape}, got {got}."
        )
    return n_nodes


def _check_sizes(call: str, dtype=None, **sizes):
    check_param_dtype(dtype, f"{call}(dtype={dtype!r})")
    for name, size in sizes.items():
        if isinstance(size, bool) or not (isinstance(size, int) and size >= 1):
            raise ValueError(f"`{call}({name}={size!r})` needs a positive integer.")


class EGNNLayer(eqx.Module):
    """One equivariant graph convolutional layer (Satorras et al. 2021, eqs. (3)-(6)):

    $$m_{ij} = \\phi_e(h_i, h_j, \\|x_i - x_j\\|^2, a_{ij}), \\qquad
    x_i' = x_i + C \\sum_{j \\ne i} (x_i - x_j)\\, \\phi_x(m_{ij}),$$
    $$m_i = \\sum_{j \\ne i} m_{ij}, \\qquad h_i' = h_i + \\phi_h(h_i, m_i),$$

    with $C = 1/(M - 1)$ for $M$ real nodes (the residual $h_i +$ only when `residual`). Since
    $\\phi_e$ sees $x$ only through distances and $x_i - x_j$ rotates with $x$ and ignores
    translations, $h'$ is $E(n)$-invariant and $x'$ is $E(n)$-equivariant (their Sec. 3.1), and
    the sums make the layer permutation-equivariant. $\\phi_e$ is Linear-SiLU-Linear-SiLU,
    $\\phi_x$ Linear-SiLU-Linear (the last without bias, initialised at Glorot gain $10^{-3}$),
    $\\phi_h$ Linear-SiLU-Linear, as in the authors' code.

    **Padding:** with a `mask`, sums run over real nodes only and $M$ counts them; inputs of
    padded nodes are replaced by zeros before use, so real nodes' outputs do not depend on
    them (even inf or NaN). Padded nodes come out with features $0$ and coordinates unchanged
    (so the layer stays $E(n)$-equivariant with the group acting on every row).

    **Arguments:**

    - `feature_size`: $F$, the node features' size.
    - `hidden_size`: the messages' size and the MLPs' width.
    - `out_feature_size`: the output features' size (default $F$).
    - `spatial_dim`: $n$, the coordinates' dimension (default 3).
    - `edge_attr_size`: the invariant edge attributes' size (0: none).
    - `residual`: whether $h_i' = h_i + \\phi_h$ (default: when `out_feature_size ==
        feature_size`).
    - `activation`: the MLPs' activation (default SiLU).
    - `dtype`: the parameters' real floating dtype.
    - `key`: a PRNG key for the initialisation.

    **Raises:** `ValueError` for a size that is not a positive int, `residual=True` with
    `out_feature_size != feature_size`, and (at call time) inputs of the wrong shapes.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> from structjax.check import equivariance_error
    >>> layer = se.EGNNLayer(2, 8, key=jax.random.key(0))
    >>> graph = (jnp.ones((5, 2)), jax.random.normal(jax.random.key(1), (5, 3)))
    >>> err = equivariance_error(lambda g: layer(*g), se.E(3), graph, jax.random.key(2),
    ...                          rep_in=se.euclidean_action, rep_out=se.euclidean_action,
    ...                          num_samples=4)
    >>> print(bool(err < 1e-10))
    True

    ```
    """

    edge_mlp: eqx.nn.MLP
    coord_mlp: eqx.nn.MLP
    node_mlp: eqx.nn.MLP
    feature_size: int = eqx.field(static=True)
    out_feature_size: int = eqx.field(static=True)
    spatial_dim: int = eqx.field(static=True)
    edge_attr_size: int = eqx.field(static=True)
    residual: bool = eqx.field(static=True)

    def __init__(
        self,
        feature_size: int,
        hidden_size: int,
        out_feature_size: int | None = None,
        spatial_dim: int = 3,
        edge_attr_size: int = 0,
        residual: bool | None = None,
        activation: Callable = jax.nn.silu,
        dtype: DTypeLike | None = None,
        *,
        key: PRNGKeyArray,
    ):
        out_feature_size = feature_size if out_feature_size is None else out_feature_size
        _check_sizes(
            "EGNNLayer",
            dtype,
            feature_size=feature_size,
            hidden_size=hidden_size,
            out_feature_size=out_feature_size,
            spatial_dim=spatial_dim,
        )
        if isinstance(edge_attr_size, bool) or not (
            isinstance(edge_attr_size, int) and edge_attr_size >= 0
        ):
            raise ValueError(f"`EGNNLayer(edge_attr_size={edge_attr_size!r})` needs an int >= 0.")
        if residual is None:
            residual = out_feature_size == feature_size
        if residual and out_feature_size != feature_size:
            raise ValueError(
                f"`EGNNLayer(feature_size={feature_size}, out_feature_size={out_feature_size}, "
                "residual=True)`: the residual h + phi_h(h, m) needs out_feature_size == "
                "feature_size; pass residual=False."
            )
        k_e, k_x, k_h, k_w = jax.random.split(key, 4)
        edge_in = 2 * feature_size + 1 + edge_attr_size  # [h_i, h_j, |x_i - x_j|^2, a_ij]
        self.edge_mlp = eqx.nn.MLP(
            edge_in, hidden_size, hidden_size, 1, activation, activation, dtype=dtype, key=k_e
        )
        coord_mlp = eqx.nn.MLP(
            hidden_size, "scalar", hidden_size, 1, activation, use_final_bias=False,
            dtype=dtype, key=k_x,
        )  # fmt: skip
        w = coord_mlp.layers[-1].weight
        bound = _COORD_GAIN * math.sqrt(6 / (hidden_size + 1))  # Glorot & Bengio 2010
        w = jax.random.uniform(k_w, w.shape, w.dtype, -bound, bound)
        self.coord_mlp = eqx.tree_at(lambda m: m.layers[-1].weight, coord_mlp, w)
        self.node_mlp = eqx.nn.MLP(
            feature_size + hidden_size, out_feature_size, hidden_size, 1, activation,
            dtype=dtype, key=k_h,
        )  # fmt: skip
        self.feature_size, self.out_feature_size = feature_size, out_feature_size
        self.spatial_dim, self.edge_attr_size, self.residual = spatial_dim, edge_attr_size, residual

    def __call__(
        self,
        h: Float[Array, "_N _F"],
        x: Float[Array, "_N _n"],
        mask: Bool[Array, " _N"] | None = None,
        edge_attr: Float[Array, "_N _N _A"] | None = None,
    ) -> tuple[Float[Array, "_N _Fout"], Float[Array, "_N _n"]]:
        """**Arguments:** one graph: `h` `(N, F)`, `x` `(N, n)`, optional `mask` `(N,)`
        (True for real nodes), `edge_attr` `(N, N, A)` if built with `edge_attr_size=A`.

        **Returns:** `(h', x')`, of shapes `(N, out_feature_size)` and `(N, n)`.
        """
        n_nodes = _check_graph(
            f"EGNNLayer(feature_size={self.feature_size}, spatial_dim={self.spatial_dim})",
            h, x, mask, edge_attr, self.feature_size, self.spatial_dim, self.edge_attr_size,
        )  # fmt: skip
        real = jnp.ones(n_nodes, bool) if mask is None else mask
        edges = real[:, None] & real[None, :] & ~jnp.eye(n_nodes, dtype=bool)
        h_in = jnp.where(real[:, None], h, 0)
        x_in = jnp.where(real[:, None], x, 0)
        diff = x_in[:, None, :] - x_in[None, :, :]  # x_i - x_j
        pairs = [
            jnp.broadcast_to(h_in[:, None, :], (n_nodes, n_nodes, self.feature_size)),
            jnp.broadcast_to(h_in[None, :, :], (n_nodes, n_nodes, self.feature_size)),
            jnp.sum(diff**2, axis=-1, keepdims=True),
        ]
        if edge_attr is not None:
            pairs.append(jnp.where(edges[..., None], edge_attr, 0))
        pair_map = lambda f, a: jax.vmap(jax.vmap(f))(a)  # noqa: E731
        messages = pair_map(self.edge_mlp, jnp.concatenate(pairs, axis=-1))  # eq. (3)
        messages = jnp.where(edges[..., None], messages, 0)
        weights = jnp.where(edges, pair_map(self.coord_mlp, messages), 0)
        num_real = jnp.sum(real, dtype=jnp.int32)
        scale = 1 / jnp.maximum(num_real - 1, 1).astype(x_in.dtype)  # C = 1/(M - 1)
        x_out = x_in + scale * jnp.sum(diff * weights[..., None], axis=1)  # eq. (4)
        aggregate = jnp.sum(messages, axis=1)  # eq. (5)
        h_out = jax.vmap(self.node_mlp)(jnp.concatenate([h_in, aggregate], axis=-1))  # eq. (6)
        if self.residual:
            h_out = h_in + h_out
        return jnp.where(real[:, None], h_out, 0), jnp.where(real[:, None], x_out, x)


class EGNN(eqx.Module):
    """A stack of `EGNNLayer`s (Satorras et al. 2021, Sec. 3 and the authors' `EGNN`): a
    linear embedding of the node features to `hidden_size`, `num_layers` residual layers,
    and a node decoder MLP (Linear-SiLU-Linear) to `out_size`.

    `__call__` gives per-node outputs: invariant features $\\mathrm{dec}(h^L_i)$ and equivariant
    coordinates $x^L$. `readout` gives the invariant graph-level prediction
    $\\sum_{i \\text{ real}} \\mathrm{dec}(h^L_i)$ (their QM9 head, less the graph decoder), for
    regression. Padded nodes (`mask` False) come out as in `EGNNLayer`: features 0,
    coordinates unchanged, and do not contribute to `readout`.

    **Arguments:**

    - `feature_size`: the input node features' size.
    - `hidden_size`: the width of every layer.
    - `out_size`: the decoded node outputs' size.
    - `num_layers`: the number of `EGNNLayer`s (default 4).
    - `spatial_dim`: the coordinates' dimension (default 3).
    - `edge_attr_size`: the invariant edge attributes' size (default 0: none).
    - `activation`: the activation (default SiLU).
    - `dtype`: the parameters' real floating dtype.
    - `key`: a PRNG key for the initialisation.

    **Raises:** `ValueError` for a size that is not a positive int, and (at call time) inputs
    of the wrong shapes.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.equivariant as se
    >>> from structjax.check import equivariance_error
    >>> net = se.EGNN(2, 8, 1, num_layers=1, key=jax.random.key(0))
    >>> graph = (jnp.ones((5, 2)), jax.random.normal(jax.random.key(1), (5, 3)))
    >>> err = equivariance_error(lambda g: net.readout(*g), se.E(3), graph,
    ...                          jax.random.key(2), rep_in=se.euclidean_action,
    ...                          rep_out=lambda g, y: y, num_samples=4)
    >>> print(net.readout(*graph).shape, bool(err < 1e-10))
    (1,) True

    ```
    """

    embedding: eqx.nn.Linear
    layers: tuple[EGNNLayer, ...]
    decoder: eqx.nn.MLP
    feature_size: int = eqx.field(static=True)
    spatial_dim: int = eqx.field(static=True)
    edge_attr_size: int = eqx.field(static=True)

    def __init__(
        self,
        feature_size: int,
        hidden_size: int,
        out_size: int,
        num_layers: int = 4,
        spatial_dim: int = 3,
        edge_attr_size: int = 0,
        activation: Callable = jax.nn.silu,
        dtype: DTypeLike | None = None,
        *,
        key: PRNGKeyArray,
    ):
        _check_sizes(
            "EGNN",
            dtype,
            feature_size=feature_size,
            hidden_size=hidden_size,
            out_size=out_size,
            num_layers=num_layers,
        )
        k_emb, k_dec, *k_layers = jax.random.split(key, num_layers + 2)
        self.embedding = eqx.nn.Linear(feature_size, hidden_size, dtype=dtype, key=k_emb)
        self.layers = tuple(
            EGNNLayer(hidden_size, hidden_size, hidden_size, spatial_dim, edge_attr_size,
                      activation=activation, dtype=dtype, key=k)
            for k in k_layers
        )  # fmt: skip
        self.decoder = eqx.nn.MLP(
            hidden_size, out_size, hidden_size, 1, activation, dtype=dtype, key=k_dec
        )
        self.feature_size, self.spatial_dim = feature_size, spatial_dim
        self.edge_attr_size = edge_attr_size

    def __call__(
        self,
        h: Float[Array, "_N _F"],
        x: Float[Array, "_N _n"],
        mask: Bool[Array, " _N"] | None = None,
        edge_attr: Float[Array, "_N _N _A"] | None = None,
    ) -> tuple[Float[Array, "_N _out"], Float[Array, "_N _n"]]:
        """**Arguments:** as `EGNNLayer.__call__`. **Returns:** `(h_out, x_out)`, of shapes
        `(N, out_size)` (invariant) and `(N, n)` (equivariant)."""
        _check_graph(
            f"EGNN(feature_size={self.feature_size}, spatial_dim={self.spatial_dim})",
            h, x, mask, edge_attr, self.feature_size, self.spatial_dim, self.edge_attr_size,
        )  # fmt: skip
        real = jnp.ones(jnp.shape(h)[0], bool) if mask is None else mask
        h = jax.vmap(self.embedding)(jnp.where(real[:, None], h, 0))
        for layer in self.layers:
            h, x = layer(h, x, mask, edge_attr)
        return jnp.where(real[:, None], jax.vmap(self.decoder)(h), 0), x

    def readout(
        self,
        h: Float[Array, "_N _F"],
        x: Float[Array, "_N _n"],
        mask: Bool[Array, " _N"] | None = None,
        edge_attr: Float[Array, "_N _N _A"] | None = None,
    ) -> Float[Array, " _out"]:
        """The $E(n)$- and permutation-invariant prediction $\\sum_{i \\text{ real}}
        \\mathrm{dec}(h^L_i)$.

        **Arguments:** as `EGNNLayer.__call__`.

        **Returns:** the prediction, of shape `(out_size,)`.
        """
        return jnp.sum(self(h, x, mask, edge_attr)[0], axis=0)
