"""equivariant suite: structjax.equivariant against the libraries a user would otherwise pick
(emlp, e3nn-jax; escnn where it installs) and against plain unconstrained layers, in one run.

`python -m benchmarks equivariant [--quick]`. In one run:

1. **Bases and layers against emlp and e3nn-jax.** For pairs of representations (O(3) V -> V
   and T2 -> T2, SO(3) T2 -> V, Lorentz V x V -> scalar, S(n) T2 -> T2, Sp(4), O(5) 2V and a
   uniform hidden representation, ...) the number of equivariant basis elements each library
   finds (they must agree) and the time to find them: ours `equivariant_basis` per pair of
   direct-sum components (what `EquivariantLinear` solves), emlp's
   `(rep_in >> rep_out).equivariant_basis()`, and for SO(3)/O(3) e3nn-jax's route: the change
   of basis to irreps (`e3nn.reduced_tensor_product_basis`) for both sides and its
   `FunctionalLinear`, whose weight count is the basis count. Every library's caches are cleared
   before every timed call (our `functools.lru_cache`, emlp's `Rep.solcache`, e3nn's lru caches);
   "first" is the first call in the process, "best" the best of the repeats. Then the layers'
   forward time at batch 256, float32, jitted with the parameters as arguments: our
   `EquivariantLinear` under `jax.vmap`, emlp's `Linear` (its flax port: the same computation as
   its default objax layer, W = P_w w every call, with explicit parameters; built with
   `jax_enable_x64` off so that it runs in float32), e3nn-jax's `equinox.Linear` on the
   equivalent irreps (same sizes, irreps coordinates), a plain `eqx.nn.Linear` of the same
   in/out sizes, and, as a diagnostic, our layer's W formed once (`layer.matrix()`) times the
   batch. The float32 equivariance error (`check.equivariance_error`, 16 samples of
   `group.sample`) of our layers, and of the peers' on the same samples for reference.
   e3nn-jax is O(3)-only; SO(3) maps are compared by labelling V as the pseudovector `1e`
   (then -I acts trivially and O(3)-equivariance is SO(3)-equivariance).
2. **Forward-time floor**: each equivariant layer's forward time <= 2x that of the plain layer
   of the same array sizes (batch 256, float32, jitted, `jax.vmap` over the batch): every
   `EquivariantLinear` of section 1 against `eqx.nn.Linear(size_in, size_out)`; `LiftingConv`
   and `GroupConv` (p4, p4m) against `eqx.nn.Conv2d` with the same number of input and output
   channels x |G| (the same array sizes); `SteerableConv` (SO(2) irreps, C8 regular fields)
   against `eqx.nn.Conv2d(in_type.size, out_type.size)`. Ratios are per-round ratios of
   interleaved timings, median. The float32 equivariance errors of the convolutions (exact for
   the elements of D4 in the group), of `EGNNLayer` (E(3)) and of an `EMLP` complete the
   certificate table (floor 1e-5); the steerable convolution's error at arbitrary angles, on a
   smooth input, is checked against its documented bound 3e-2 (bilinear resampling).
3. **Accuracy.** scikit-learn's `load_digits` (8x8, scaled to [0, 1], zero-padded to 9x9 so that
   rotations by 90 degrees about the centre are exact; 75/25 stratified split). All networks
   are **trained on upright digits only** and tested on upright digits, on digits rotated by a
   random multiple of 90 degrees, and on digits rotated by a random angle (bilinear,
   `FieldType.act`), and on every angle of a grid. A plain CNN (3 convolutions, ReLU, spatial
   mean, linear read-out) against the same architecture as p4 and p4m G-CNNs (`LiftingConv`,
   `GroupConv`, `GroupPool`, `GlobalPool`) and as steerable CNNs (`SteerableConv` with gated
   SO(2) irreps, and with C8 regular fields and ReLU; `InvariantPool`), widths chosen for about
   the same parameter count. Then EMLP's regression tasks (Finzi, Welling & Wilson 2021,
   Sec. 7): the O(5)-invariant f(x1, x2) = sin|x1| - |x2|^3/2 + x1.x2/(|x1||x2|) and the
   Lorentz-invariant electron-muon scattering amplitude of four 4-momenta (emlp's
   `ParticleInteraction`; the formula is cross-checked against emlp's installed
   `emlp.datasets` when it imports), inputs standardised per vector as emlp does: test MSE
   (standardised targets) of our `EMLP` against an MLP of the same width and depth.

Floors are reported PASS or MISS, never enforced. Training runs in float32 (Adam, cosine
schedule); the convolutional networks are trained by a Python loop over one jitted step,
because XLA:CPU runs convolutions inside a `lax.scan` about 15-30x slower than the same step
jitted alone (measured while writing this suite); the MLPs in one `lax.scan`.
"""

import contextlib
import functools
import importlib
import io
import math
import operator
import os
import time
import warnings
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import structjax.equivariant as se
from structjax import check
from structjax.equivariant import _basis as _sj_basis
from structjax.equivariant._reps import components

from . import _equivariant_report as report, _harness as h

F32, F64 = jnp.float32, jnp.float64
_BATCH = 256
_ERR_FLOOR = 1e-5  # float32 equivariance error of a layer
_TIME_FLOOR = 2.0  # equivariant forward time / plain layer of the same sizes
_STEERABLE_ANGLE_BOUND = 3e-2  # SteerableConv's documented bound at arbitrary angles
_ESCNN_NOTE = (
    "`pip install escnn` fails on this machine: its dependency py3nj needs a Fortran compiler "
    "to build (pip: metadata-generation-failed), so escnn is not compared"
)


def _eq(name: str):
    """`structjax.equivariant.<name>`, or from its private module while not yet exported."""
    if hasattr(se, name):
        return getattr(se, name)
    for mod in ("_gconv", "_fields", "_steerable", "_steerable_basis", "_egnn"):
        module = importlib.import_module(f"structjax.equivariant.{mod}")
        if hasattr(module, name):
            return getattr(module, name)
    raise ImportError(f"structjax.equivariant has no `{name}`")


def _nparams(model) -> int:
    return int(
        sum(a.size for a in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_inexact_array)))
    )


@contextlib.contextmanager
def _quiet():
    """Silence the peers' warnings and progress bars (emlp's Krylov solver draws tqdm bars)."""
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


# --- peers ------------------------------------------------------------------------------------


def _peers() -> dict:
    """Import each peer; an import that fails is reported with its error, never faked."""
    out = {}
    for label, dist, modules in (
        ("emlp", "emlp", ("emlp.groups", "emlp.reps", "emlp.nn.flax", "emlp.datasets")),
        ("e3nn-jax", "e3nn-jax", ("e3nn_jax",)),
        ("escnn", "escnn", ("escnn",)),
    ):
        start = time.perf_counter()
        try:
            with _quiet():
                for m in modules:
                    importlib.import_module(m)
            out[label] = dict(available=True, version=h._version(dist),
                              import_s=time.perf_counter() - start)  # fmt: skip
        except Exception as e:  # noqa: BLE001 -- any failure to import is the finding
            out[label] = dict(available=False, version=h._version(dist),
                              error=f"{type(e).__name__}: {e}")  # fmt: skip
    if not out["escnn"]["available"]:
        out["escnn"]["note"] = _ESCNN_NOTE
    return out


def _clear_module_caches(module) -> None:
    for value in list(vars(module).values()):
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()


def _clear_caches(peers: dict) -> None:
    """Every library's basis caches: ours, emlp's solution cache, e3nn's lru caches."""
    _sj_basis._basis.cache_clear()
    if peers["emlp"]["available"]:
        from emlp.reps import product_sum_reps, representation

        representation.Rep.solcache.clear()
        _clear_module_caches(product_sum_reps)
    if peers["e3nn-jax"]["available"]:
        from e3nn_jax._src import reduced_tensor_product, so3

        _clear_module_caches(reduced_tensor_product)
        _clear_module_caches(so3)


def _timed(fn: Callable, peers: dict):
    _clear_caches(peers)
    start = time.perf_counter()
    with _quiet():
        out = fn()
    return out, time.perf_counter() - start


# --- 1. bases and layers against emlp and e3nn-jax --------------------------------------------


def _tensor_sum(parts, group):
    """Ours: the direct sum of `copies` x T(rank, 0) over `parts` = [(rank, copies)]."""
    return functools.reduce(operator.add, [m * se.T(k, 0, group) for k, m in parts])


def _emlp_tensor_sum(parts, group):
    import emlp.reps as er

    reps = [m * (er.Scalar if k == 0 else er.T(k)) for k, m in parts]
    return functools.reduce(operator.add, reps)(group)


def _uniform_parts(channels: int, group) -> list[tuple[int, int]]:
    """[(rank, copies)] of our `uniform_rep(channels, group)`, to build the same rep in emlp."""
    d = group.d
    return [(round(math.log(r.size, d)), m) for r, m in components(se.uniform_rep(channels, group))]


def _emlp_cases(quick: bool) -> dict:
    """name -> ((our rep_in, rep_out), () -> (emlp rep_in, rep_out))."""
    import emlp.groups as eg
    import emlp.reps as er

    def tt(k, G):
        return se.T(k, 0, G)

    o3, so3, lor = se.O(3), se.SO(3), se.Lorentz()
    cases = {
        "O(3): V -> V": ((se.V(o3), se.V(o3)), lambda: (er.V(eg.O(3)), er.V(eg.O(3)))),
        "O(3): T2 -> T2": ((tt(2, o3), tt(2, o3)), lambda: (er.T(2)(eg.O(3)), er.T(2)(eg.O(3)))),
        "SO(3): T2 -> V": ((tt(2, so3), se.V(so3)), lambda: (er.T(2)(eg.SO(3)), er.V(eg.SO(3)))),
        "Lorentz: V x V -> scalar": (
            (se.V(lor) * se.V(lor), se.Scalar(lor)),
            lambda: (er.V(eg.Lorentz()) * er.V(eg.Lorentz()), er.Scalar(eg.Lorentz())),
        ),
    }
    n = 4 if quick else 5
    sn = se.S(n)
    cases[f"S({n}): T2 -> T2"] = ((tt(2, sn), tt(2, sn)),
                                  lambda: (er.T(2)(eg.S(n)), er.T(2)(eg.S(n))))  # fmt: skip
    if quick:
        cases = {k: v for k, v in cases.items() if k.startswith(("O(3): T2", "Lorentz", "S("))}
    else:
        o5 = se.O(5)
        parts = _uniform_parts(128, o5)
        hidden = _tensor_sum(parts, o5)
        label = "+".join(f"{m}T{k}" for k, m in parts)
        cases[f"O(5): 2V -> uniform_rep(128) = {label}"] = (
            (2 * se.V(o5), hidden),
            lambda: (2 * er.V(eg.O(5)), _emlp_tensor_sum(parts, eg.O(5))),
        )
        cases["O(5): uniform_rep(128) -> uniform_rep(128)"] = (
            (hidden, hidden),
            lambda: (_emlp_tensor_sum(parts, eg.O(5)), _emlp_tensor_sum(parts, eg.O(5))),
        )
        lparts = _uniform_parts(128, lor)
        cases["Lorentz: 4V -> uniform_rep(128)"] = (
            (4 * se.V(lor), _tensor_sum(lparts, lor)),
            lambda: (4 * er.V(eg.Lorentz()), _emlp_tensor_sum(lparts, eg.Lorentz())),
        )
        sp = se.Sp(2)
        cases["Sp(4): T2 -> T2"] = ((tt(2, sp), tt(2, sp)),
                                    lambda: (er.T(2)(eg.Sp(2)), er.T(2)(eg.Sp(2))))  # fmt: skip
    return cases


def _e3nn_cases(quick: bool) -> dict:
    """name -> ((our rep_in, rep_out), () -> (e3nn irreps_in, irreps_out), group for the check).

    The e3nn side computes the change of basis of each tensor representation into irreps
    (`reduced_tensor_product_basis`); V is `1o` for O(3) and `1e` for SO(3)."""
    import e3nn_jax as e3nn

    def irreps(rank: int, label: str):
        if rank == 0:
            return e3nn.Irreps("0e")
        if rank == 1:
            return e3nn.Irreps(label)
        idx = "ijkl"[:rank]
        q = e3nn.reduced_tensor_product_basis(idx, **{i: label for i in idx})
        return q.irreps

    def tt(k, G):
        return se.T(k, 0, G)

    o3, so3 = se.O(3), se.SO(3)
    cases = {
        "O(3): V -> V": ((se.V(o3), se.V(o3)), lambda: (irreps(1, "1o"), irreps(1, "1o")), o3),
        "O(3): T2 -> T2": ((tt(2, o3), tt(2, o3)), lambda: (irreps(2, "1o"),) * 2, o3),
        "O(3): T3 -> V": ((tt(3, o3), se.V(o3)), lambda: (irreps(3, "1o"), irreps(1, "1o")), o3),
        "SO(3): T2 -> V": ((tt(2, so3), se.V(so3)),
                           lambda: (irreps(2, "1e"), irreps(1, "1e")), so3),
        "SO(3): T3 -> scalar": ((tt(3, so3), se.Scalar(so3)),
                                lambda: (irreps(3, "1e"), irreps(0, "1e")), so3),
    }  # fmt: skip
    wide = 32 * se.V(o3) + 16 * tt(2, o3)

    def wide_irreps():
        irr = (e3nn.Irreps("32x1o") + 16 * irreps(2, "1o")).regroup()
        return irr, irr

    cases["O(3): 32V + 16T2 -> same"] = ((wide, wide), wide_irreps, o3)
    if quick:
        cases = {k: v for k, v in cases.items() if k.startswith("O(3): 32V")}
    else:
        cases["O(3): T4 -> scalar"] = ((tt(4, o3), se.Scalar(o3)),
                                       lambda: (irreps(4, "1o"), irreps(0, "1o")), o3)  # fmt: skip
    return cases


def _our_count(rep_in, rep_out) -> int:
    """The basis elements `EquivariantLinear` solves for: per pair of components, r x n x m."""
    return int(sum(
        se.equivariant_basis(a, b).shape[-1] * n * m
        for b, n in components(rep_out) for a, m in components(rep_in)
    ))  # fmt: skip


def _emlp_count(rep_in, rep_out) -> int:
    from emlp.reps.representation import Rep

    count = int((rep_in >> rep_out).equivariant_basis().shape[-1])
    jax.block_until_ready(list(Rep.solcache.values()))  # its solves are asynchronous JAX work
    return count


def _e3nn_count(make) -> int:
    import e3nn_jax as e3nn

    irr_in, irr_out = make()
    return int(e3nn.FunctionalLinear(irr_in, irr_out).num_weights)


def _basis_times(ours: Callable, peer: Callable, repeats: int, peers: dict) -> dict:
    """Alternately time ours and the peer, every cache cleared before each call."""
    t_ours, t_peer = [], []
    for _ in range(repeats):
        c_ours, s = _timed(ours, peers)
        t_ours.append(s)
        c_peer, s = _timed(peer, peers)
        t_peer.append(s)
    return dict(
        count_ours=c_ours, count_peer=c_peer, agree=c_ours == c_peer,
        ours_first_s=t_ours[0], ours_best_s=min(t_ours),
        peer_first_s=t_peer[0], peer_best_s=min(t_peer),
        peer_over_ours_best=min(t_peer) / max(min(t_ours), 1e-12),
    )  # fmt: skip


def _vmapped(model, x):
    return jax.vmap(model)(x)


def _w_once(layer, x):
    return x @ layer.matrix().T


def _time_forwards(cases: dict, rounds: int, reference: str, precompiled=None) -> dict:
    """Compile each (fn, args) and time them interleaved with the `precompiled` ones (name ->
    (compiled, args)); ratios to `reference`: the median over rounds of the per-round ratio."""
    compiled, out = {}, {}
    for name, (fn, args) in cases.items():
        c, compile_s = h.compile_fn(fn, *args)
        compiled[name] = (c, args)
        out[name] = dict(compile_s=compile_s)
    for name, case in (precompiled or {}).items():
        compiled[name], out[name] = case, {}
    timings = h.time_interleaved(compiled, rounds)
    base = np.asarray(timings[reference].times)
    for name, t in timings.items():
        ratio = float(np.median(np.asarray(t.times) / base))
        out[name].update(best_s=t.best, median_s=t.median, ratio_to_reference=ratio)
    return out


def _errors(layer, rep_in, rep_out, x32, key, float64: bool) -> dict:
    group = rep_in.group
    e32 = check.equivariance_error(layer, group, x32, key, rep_in=rep_in, rep_out=rep_out)
    out = dict(error_float32=float(e32), error_float64=None)
    if float64:
        out["error_float64"] = float(check.equivariance_error(
            h.cast(layer, F64), group, x32.astype(F64), key, rep_in=rep_in, rep_out=rep_out
        ))  # fmt: skip
    return out


def _emlp_layer(ein, eout, rep_in, rep_out, x32, key):
    """emlp's flax `Linear`, built and compiled with x64 off (float32 projectors), its forward
    and its float32 equivariance error on our group's samples."""
    import emlp.nn.flax as ef
    from emlp.reps.representation import Rep

    with jax.enable_x64(False), _quiet():
        # the solutions found in float64 above, cast: the layer runs in float32
        Rep.solcache.update({k: np.asarray(v, np.float32) for k, v in Rep.solcache.items()})
        lin = ef.Linear(ein, eout)
        xb = jnp.asarray(x32)
        params = lin.init(jax.random.PRNGKey(0), xb)
        err = check.equivariance_error(
            lambda v: lin.apply(params, v[None])[0], rep_in.group, xb[0], key,
            rep_in=rep_in, rep_out=rep_out,
        )  # fmt: skip
        compiled, compile_s = h.compile_fn(lin.apply, params, xb)
    return (compiled, (params, xb)), compile_s, float(err)


def _peer_section(quick: bool, peers: dict, progress) -> dict:
    repeats, rounds = (2, 10) if quick else (3, 40)
    key = jax.random.key(3)
    out = dict(batch=_BATCH, basis_repeats=repeats, rounds=rounds, emlp={}, e3nn={})
    if peers["emlp"]["available"]:
        for name, ((rin, rout), make) in _emlp_cases(quick).items():
            ein, eout = make()
            row = _basis_times(lambda: _our_count(rin, rout),
                               lambda: _emlp_count(ein, eout), repeats, peers)  # fmt: skip
            row.update(size_in=rin.size, size_out=rout.size)
            layer = se.EquivariantLinear(rin, rout, dtype=F32, key=jax.random.key(0))
            dense = eqx.nn.Linear(rin.size, rout.size, dtype=F32, key=jax.random.key(0))
            x = jax.random.normal(jax.random.key(1), (_BATCH, rin.size), F32)
            row.update(_errors(layer, rin, rout, x[0], key, not quick))
            emlp_case, emlp_compile_s, row["peer_error_float32"] = _emlp_layer(
                ein, eout, rin, rout, x, key
            )
            cases = {
                "dense": (_vmapped, (dense, x)),
                "ours": (_vmapped, (layer, x)),
                "ours, W formed once": (_w_once, (layer, x)),
            }
            fwd = _time_forwards(cases, rounds, "dense", precompiled={"emlp": emlp_case})
            fwd["emlp"]["compile_s"] = emlp_compile_s
            row["forward"] = fwd
            out["emlp"][name] = row
            progress.update(f"emlp {name}")
    if peers["e3nn-jax"]["available"]:
        import e3nn_jax as e3nn

        for name, ((rin, rout), make, group) in _e3nn_cases(quick).items():
            row = _basis_times(lambda: _our_count(rin, rout),
                               lambda: _e3nn_count(make), repeats, peers)  # fmt: skip
            irr_in, irr_out = make()
            row.update(size_in=rin.size, size_out=rout.size, irreps_in=str(irr_in),
                       irreps_out=str(irr_out))  # fmt: skip
            layer = se.EquivariantLinear(rin, rout, dtype=F32, key=jax.random.key(0))
            dense = eqx.nn.Linear(rin.size, rout.size, dtype=F32, key=jax.random.key(0))
            x = jax.random.normal(jax.random.key(1), (_BATCH, rin.size), F32)
            row.update(_errors(layer, rin, rout, x[0], key, not quick))
            lin = e3nn.equinox.Linear(irreps_out=irr_out, irreps_in=irr_in, key=jax.random.key(0))
            xi = e3nn.IrrepsArray(irr_in, x)

            def act(irr):
                return lambda g, v: e3nn.IrrepsArray(irr, v).transform_by_matrix(g).array

            row["peer_error_float32"] = float(check.equivariance_error(
                lambda v: lin(e3nn.IrrepsArray(irr_in, v)).array, group, x[0], key,
                rep_in=act(irr_in), rep_out=act(irr_out),
            ))  # fmt: skip
            cases = {
                "dense": (_vmapped, (dense, x)),
                "ours": (_vmapped, (layer, x)),
                "ours, W formed once": (_w_once, (layer, x)),
                "e3nn": (lambda m, v: m(v).array, (lin, xi)),
            }
            row["forward"] = _time_forwards(cases, rounds, "dense")
            out["e3nn"][name] = row
            progress.update(f"e3nn {name}")
    return out


# --- 2. forward time against plain layers; equivariance certificates ------------------------


def _smooth_field(key, channels: int, n: int = 33, bumps: int = 6, width: float = 2.5,
                  radius: float = 9.0):  # fmt: skip
    """A sum of Gaussians of width `width` centred inside a disc, tapered to zero outside it
    (band-limited and vanishing near the border: the setting of `SteerableConv`'s bound)."""
    c = (n - 1) / 2
    i, j = jnp.meshgrid(jnp.arange(n, dtype=F64), jnp.arange(n, dtype=F64), indexing="ij")
    px, py = j - c, c - i
    k1, k2 = jax.random.split(key)
    centres = jax.random.uniform(k1, (bumps, 2), F64, -radius / 2**0.5, radius / 2**0.5)
    amps = jax.random.normal(k2, (channels, bumps), F64)
    d2 = (px - centres[:, 0, None, None]) ** 2 + (py - centres[:, 1, None, None]) ** 2
    x = jnp.einsum("cb,bhw->chw", amps, jnp.exp(-d2 / (2 * width**2)))
    return x * jax.nn.sigmoid(radius + 3 - jnp.hypot(px, py))


def _conv_cases(n: int, quick: bool) -> dict:
    """name -> (layer, plain conv of the same array sizes, layer input shape, plain input
    shape, group whose samples the layer commutes with exactly, rep_in, rep_out)."""
    lifting, group_conv = _eq("LiftingConv"), _eq("GroupConv")
    rotate_image, rotate_features = _eq("rotate_image"), _eq("rotate_group_features")
    field_type, steerable = _eq("FieldType"), _eq("SteerableConv")
    keys = iter(jax.random.split(jax.random.key(5), 16))

    def plain(cin, cout, k):
        return eqx.nn.Conv2d(cin, cout, k, padding="SAME", dtype=F32, key=next(keys))

    cases = {}
    for gname, group, c in (("p4", se.C(4), 8), ("p4m", se.D(4), 4)):
        o = group.order
        if quick and gname == "p4m":  # quick: one group convolution, one steerable
            continue
        if not quick:
            cases[f"LiftingConv {gname}: 1 -> {c} (x{o}), 3x3"] = (
                lifting(group, 1, c, 3, dtype=F32, key=next(keys)), plain(1, c * o, 3),
                (1, n, n), (1, n, n), group, rotate_image, rotate_features,
            )  # fmt: skip
        cases[f"GroupConv {gname}: {c} -> {c} (x{o}), 3x3"] = (
            group_conv(group, c, c, 3, dtype=F32, key=next(keys)), plain(c * o, c * o, 3),
            (c, o, n, n), (c * o, n, n), group, rotate_features, rotate_features,
        )  # fmt: skip
    so2 = field_type(se.SO(2), {0: 4, 1: 4, 2: 4})
    cases[f"SteerableConv SO(2): 4x(0+1+2) -> same ({so2.size} ch), 5x5"] = (
        steerable(so2, so2, 5, dtype=F32, key=next(keys)), plain(so2.size, so2.size, 5),
        (so2.size, n, n), (so2.size, n, n), se.C(4), so2, so2,
    )  # fmt: skip
    if quick:
        return cases
    c8 = field_type(se.C(8), {"regular": 4})
    cases[f"SteerableConv C8: 4 regular -> same ({c8.size} ch), 5x5"] = (
        steerable(c8, c8, 5, dtype=F32, key=next(keys)), plain(c8.size, c8.size, 5),
        (c8.size, n, n), (c8.size, n, n), se.C(4), c8, c8,
    )  # fmt: skip
    return cases


def _conv_section(quick: bool, progress) -> dict:
    n, rounds = 9, (7 if quick else 21)
    key = jax.random.key(11)
    out = dict(batch=_BATCH, image=n, rounds=rounds, layers={})
    for name, (layer, plain, shape, pshape, group, rin, rout) in _conv_cases(n, quick).items():
        x = jax.random.normal(jax.random.key(1), (_BATCH, *shape), F32)
        xp = jax.random.normal(jax.random.key(1), (_BATCH, *pshape), F32)
        e32 = check.equivariance_error(layer, group, x[0], key, rep_in=rin, rep_out=rout)
        fwd = _time_forwards({"plain conv": (_vmapped, (plain, xp)),
                              "ours": (_vmapped, (layer, x))}, rounds, "plain conv")  # fmt: skip
        out["layers"][name] = dict(
            params=_nparams(layer), plain_params=_nparams(plain), error_float32=float(e32),
            check_group=group.name, forward=fwd,
        )  # fmt: skip
        progress.update(name)
    if quick:
        return out
    # arbitrary angles: the documented setting (33x33, smooth input, kernel 7, SO(2) irreps)
    field_type, steerable = _eq("FieldType"), _eq("SteerableConv")
    ftype = field_type(se.SO(2), [0, 1, 2])
    conv = steerable(ftype, ftype, 7, key=jax.random.key(12))
    xs = _smooth_field(jax.random.key(13), ftype.size)
    err = check.equivariance_error(conv, se.SO(2), xs, key, rep_in=ftype, rep_out=ftype)
    out["steerable_arbitrary_angles"] = dict(
        error_float64=float(err), bound=_STEERABLE_ANGLE_BOUND, field_type="SO(2) [0, 1, 2]",
        kernel=7, image=33,
    )  # fmt: skip
    return out


def _certificates(quick: bool, progress) -> dict:
    """float32 equivariance errors of the layers not covered elsewhere: EGNNLayer, EMLP."""
    key = jax.random.key(21)
    egnn_layer, action = _eq("EGNNLayer"), _eq("euclidean_action")
    layer = egnn_layer(8, 32, dtype=F32, key=jax.random.key(0))
    graph = (jax.random.normal(jax.random.key(1), (10, 8), F32),
             jax.random.normal(jax.random.key(2), (10, 3), F32))  # fmt: skip
    egnn = check.equivariance_error(lambda g: layer(*g), se.E(3), graph, key,
                                    rep_in=action, rep_out=action)  # fmt: skip
    o5 = se.O(5)
    width = 64 if quick else 128
    emlp = se.EMLP(2 * se.V(o5), se.Scalar(o5), width, 2, dtype=F32, key=jax.random.key(0))
    x = jax.random.normal(jax.random.key(3), (10,), F32)
    emlp_err = check.equivariance_error(emlp, o5, x, key, rep_in=emlp.rep_in,
                                        rep_out=lambda g, y: y)  # fmt: skip
    progress.update("certificates")
    return {
        "EGNNLayer (E(3), 10 nodes, 8 features)": dict(error_float32=float(egnn), group="E(3)"),
        f"EMLP (O(5): 2V -> scalar, uniform_rep({width}), 2 layers)": dict(
            error_float32=float(emlp_err), group="O(5)"
        ),
    }


# --- 3a. rotated digits -----------------------------------------------------------------------


class _Seq(eqx.Module):
    layers: tuple

    def __call__(self, x, *, key=None):
        for layer in self.layers:
            x = layer(x)
        return x


class _Apply(eqx.Module):
    fn: Callable = eqx.field(static=True)

    def __call__(self, x, *, key=None):
        return self.fn(x)


def _spatial_mean(x):
    return jnp.mean(x, axis=(-2, -1))


_RELU = _Apply(jax.nn.relu)


def _digit_nets(quick: bool) -> dict:
    """The same architecture (3 convolutions, invariant pooling, linear read-out), widths for
    about the same parameter count. name -> (model, group of exact invariance or None)."""
    k = 3
    keys = iter(jax.random.split(jax.random.key(0), 32))
    c_plain, c_p4, c_p4m, m_so2 = (12, 6, 4, 6) if quick else (16, 8, 6, 8)
    lifting, group_conv = _eq("LiftingConv"), _eq("GroupConv")
    group_pool, global_pool = _eq("GroupPool"), _eq("GlobalPool")
    field_type, steerable = _eq("FieldType"), _eq("SteerableConv")
    gated, invariant_pool = _eq("GatedFieldNonlinearity"), _eq("InvariantPool")
    pointwise = _eq("PointwiseNonlinearity")

    def conv(cin, cout):
        return eqx.nn.Conv2d(cin, cout, k, padding="SAME", dtype=F32, key=next(keys))

    def linear(cin):
        return eqx.nn.Linear(cin, 10, dtype=F32, key=next(keys))

    c = c_plain
    nets = {f"plain CNN ({c} ch)": (_Seq((
        conv(1, c), _RELU, conv(c, c), _RELU, conv(c, c), _RELU, _Apply(_spatial_mean), linear(c),
    )), None)}  # fmt: skip
    for gname, group, c in (("p4 G-CNN (C4", se.C(4), c_p4), ("p4m G-CNN (D4", se.D(4), c_p4m)):
        nets[f"{gname}, {c} ch)"] = (_Seq((
            lifting(group, 1, c, k, dtype=F32, key=next(keys)), _RELU,
            group_conv(group, c, c, k, dtype=F32, key=next(keys)), _RELU,
            group_conv(group, c, c, k, dtype=F32, key=next(keys)), _RELU,
            group_pool("max"), global_pool("mean"), linear(c),
        )), group)  # fmt: skip
    m = m_so2
    tin, th = field_type(se.SO(2), [0]), field_type(se.SO(2), {0: m, 1: m, 2: m})
    gate = gated(th)
    nets[f"steerable SO(2) (gated irreps {m}x(0+1+2))"] = (_Seq((
        steerable(tin, gate.in_type, k, dtype=F32, key=next(keys)), gate,
        steerable(th, gate.in_type, k, dtype=F32, key=next(keys)), gate,
        steerable(th, gate.in_type, k, dtype=F32, key=next(keys)), gate,
        invariant_pool(th), _Apply(_spatial_mean), linear(len(th.fields)),
    )), se.C(4))  # fmt: skip
    if quick:
        return {name: (_he_init(model, next(keys)), group) for name, (model, group) in nets.items()}
    m = 7
    tc8 = field_type(se.C(8), {"regular": m})
    tin8 = field_type(se.C(8), [0])
    nets[f"steerable C8 ({m} regular, ReLU)"] = (_Seq((
        steerable(tin8, tc8, k, dtype=F32, key=next(keys)), pointwise(tc8),
        steerable(tc8, tc8, k, dtype=F32, key=next(keys)), pointwise(tc8),
        steerable(tc8, tc8, k, dtype=F32, key=next(keys)), pointwise(tc8),
        invariant_pool(tc8), _Apply(_spatial_mean), linear(m),
    )), se.C(4))  # fmt: skip
    return {name: (_he_init(model, next(keys)), group) for name, (model, group) in nets.items()}


def _he_init(model, key):
    """Every convolution weight (ndim >= 4: plain, lifting, group) re-drawn from
    N(0, 2 / fan_in), fan_in = the product of all but its first axis (He et al. 2015): the
    steerable layers' own initialisation, so that all networks start alike (at eqx's default,
    uniform +-1/sqrt(fan_in), activations shrink ~3x per layer)."""
    params, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    leaves = [
        jnp.sqrt(2.0 / math.prod(a.shape[1:])) * jax.random.normal(k, a.shape, a.dtype)
        if a.ndim >= 4 else a
        for a, k in zip(leaves, keys)
    ]  # fmt: skip
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)


def _rotation(theta):
    c, s = jnp.cos(theta), jnp.sin(theta)
    return jnp.stack([jnp.stack([c, -s]), jnp.stack([s, c])])


@functools.cache
def _rotate_batch():
    act = _eq("FieldType")(se.SO(2), [0]).act
    return jax.jit(lambda thetas, x: jax.vmap(act)(jax.vmap(_rotation)(thetas), x))


def _rotated(x, thetas):
    """Each image of `x` (m, 1, n, n) rotated by its angle (bilinear; exact at multiples of
    90 degrees), with the library's own action on scalar fields."""
    return _rotate_batch()(jnp.asarray(thetas, F32), jnp.asarray(x))


def _digits(quick: bool, progress) -> dict:
    steps, batch, lr = (250, 32, 3e-3) if quick else (1500, 64, 3e-3)
    # 8x8 -> 9x9 (a zero row below, a zero column right): the pixel grid has a centre pixel,
    # so rotations by 90 degrees about it permute pixels exactly
    (xtr, ytr), (x_up, y_te) = h.digits(pad_to=9)
    x_te = np.asarray(x_up)
    rng = np.random.default_rng(0)
    batches = jnp.asarray(rng.integers(0, len(xtr), (steps, batch)))
    quarter = rng.integers(0, 4, len(x_te))
    angles = rng.uniform(0, 2 * np.pi, len(x_te))
    x_rot90 = jnp.asarray(
        np.stack([np.rot90(im, k, axes=(-2, -1)) for im, k in zip(x_te, quarter)])
    )
    x_angle = _rotated(x_te, angles)
    grid = np.arange(0, 360, 30 if quick else 10)
    x_grid = {int(a): _rotated(x_te, np.full(len(x_te), np.deg2rad(a))) for a in grid}
    rotate_image = _eq("rotate_image")
    scalar_field = _eq("FieldType")(se.SO(2), [0])
    out = dict(steps=steps, batch=batch, learning_rate=lr, train=len(xtr), test=len(x_te),
               kernel=3, image=9, trained_on="upright digits only",
               angle_grid_deg=grid.tolist(), nets={})  # fmt: skip

    def loss(model, idx):
        logits = jax.vmap(model)(xtr[idx])
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, ytr[idx]))

    for name, (model, group) in _digit_nets(quick).items():
        # a Python loop over one jitted step (see the module doc)
        model, losses, wall = h.train(model, loss, h.adam_cosine(lr, steps), batches,
                                      steps=steps, loop=True)  # fmt: skip
        predict = jax.jit(lambda m, x: jnp.argmax(jax.vmap(m)(x), -1))

        def acc(x, model=model, predict=predict):
            return float(jnp.mean(predict(model, x) == y_te))

        key = jax.random.key(31)
        inv = {"SO(2)": None}
        checks = [("C4", se.C(4), rotate_image)]
        if not quick:  # approximate (bilinear): the random-angle accuracy tells the same story
            checks.append(("SO(2)", se.SO(2), scalar_field))
        for gname, grp, act in checks:
            inv[gname] = float(check.equivariance_error(
                model, grp, x_up[0], key, rep_in=act, rep_out=lambda g, y: y,
            ))  # fmt: skip
        out["nets"][name] = dict(
            params=_nparams(model), train_s=wall, final_loss=float(np.mean(losses[-20:])),
            loss_curve=losses[:: max(1, steps // 100)].tolist(),
            acc_upright=acc(x_up), acc_rot90=acc(x_rot90), acc_random_angle=acc(x_angle),
            acc_grid=[acc(x_grid[int(a)]) for a in grid],
            invariance_error_c4_float32=inv["C4"], invariance_error_so2_float32=inv["SO(2)"],
            exact_group=None if group is None else group.name,
        )  # fmt: skip
        progress.update(f"digits {name}")
    return out


# --- 3b. EMLP's regression tasks ----------------------------------------------------------------

_ETA = np.diag([1.0, -1.0, -1.0, -1.0])


def _o5_target(x):
    """f(x1, x2) = sin|x1| - |x2|^3 / 2 + x1.x2 / (|x1| |x2|), x1, x2 in R^5 (emlp's
    `O5Synthetic`)."""
    r1, r2 = x[:, :5], x[:, 5:]
    n1, n2 = np.linalg.norm(r1, axis=-1), np.linalg.norm(r2, axis=-1)
    return np.sin(n1) - 0.5 * n2**3 + np.sum(r1 * r2, -1) / (n1 * n2)


def _particle_target(x):
    """The e-mu scattering amplitude 4 L_e^{mu nu} L^mu_{mu nu} of four 4-momenta, as emlp's
    `ParticleInteraction` computes it (metric diag(1, -1, -1, -1))."""
    p1, p2, p3, p4 = x.reshape(-1, 4, 4).transpose(1, 0, 2)

    def dot(a, b):
        return np.sum((a @ _ETA) * b, -1)

    le = p1[:, :, None] * p3[:, None, :] - (dot(p1, p3) - dot(p1, p1))[:, None, None] * _ETA
    lmu = (p2 @ _ETA)[:, :, None] * (p4 @ _ETA)[:, None, :] - (dot(p2, p4) - dot(p2, p2))[
        :, None, None
    ] * _ETA
    return 4 * np.sum(le * lmu, axis=(-1, -2))


def _o5_data(rng, n):
    return rng.standard_normal((n, 10))


def _particle_data(rng, n):
    return rng.standard_normal((n, 16)) / 4


def _o5_scale(x):
    """One scale per vector (invariant under O(5)), as emlp's `O5Synthetic.stats`."""
    s = np.sqrt(np.mean(x.reshape(-1, 2, 5) ** 2, axis=(0, 2)))
    return np.repeat(s, 5)


def _particle_scale(x):
    """One scale per 4-momentum (invariant under the Lorentz group), as emlp's
    `ParticleInteraction`: sqrt(mean |(p eta) * p|)."""
    p = x.reshape(-1, 4, 4)
    s = np.sqrt(np.mean(np.mean(np.abs((p @ _ETA) * p), -1), 0))
    return np.repeat(s, 4)


_TASKS = {
    "O(5) synthetic": dict(group=lambda: se.O(5), rep_in=lambda G: 2 * se.V(G),
                           data=_o5_data, target=_o5_target, scale=_o5_scale,
                           emlp="O5Synthetic"),
    "Lorentz particle scattering": dict(group=lambda: se.Lorentz(),
                                        rep_in=lambda G: 4 * se.V(G), data=_particle_data,
                                        target=_particle_target, scale=_particle_scale,
                                        emlp="ParticleInteraction"),
}  # fmt: skip


def _crosscheck_emlp(task: dict, peers: dict) -> float | None:
    """max |our target - emlp's| on emlp's own samples (None without emlp)."""
    if not peers["emlp"]["available"]:
        return None
    import emlp.datasets as ed

    state = np.random.get_state()
    try:
        np.random.seed(0)
        with _quiet():
            ds = getattr(ed, task["emlp"])(256)
    finally:
        np.random.set_state(state)
    ref = np.asarray(ds.Y)[:, 0]
    return float(np.max(np.abs(task["target"](np.asarray(ds.X)) - ref)) / np.max(np.abs(ref)))


def _regression(quick: bool, peers: dict, progress) -> dict:
    if quick:
        sizes, n_test, steps, width, depth = (1000,), 500, 400, 64, 2
    else:
        # width 128, depth 2 (the paper's 384 x 3 costs ~15x more per step on 2 CPU cores)
        sizes, n_test, steps, width, depth = (300, 3000), 2000, 3000, 128, 2
    batch, lr = 256, 3e-3
    out = dict(train_sizes=list(sizes), test=n_test, steps=steps, batch=batch, learning_rate=lr,
               width=width, depth=depth, tasks={})  # fmt: skip
    for tname, task in _TASKS.items():
        group = task["group"]()
        rep_in = task["rep_in"](group)
        rng = np.random.default_rng(1)
        x_all = task["data"](rng, max(sizes) + n_test)
        y_all = task["target"](x_all)
        x_te, y_te = x_all[-n_test:], y_all[-n_test:]
        rows = {}
        for n in sizes:
            x_tr, y_tr = x_all[:n], y_all[:n]
            scale, mu, sd = task["scale"](x_tr), y_tr.mean(), y_tr.std()
            xtr = jnp.asarray(x_tr / scale, F32)
            ytr = jnp.asarray((y_tr - mu) / sd, F32)
            xte = jnp.asarray(x_te / scale, F32)
            yte = jnp.asarray((y_te - mu) / sd, F32)
            batches = jnp.asarray(np.random.default_rng(2).integers(0, n, (steps, batch)))

            def loss(model, idx, xtr=xtr, ytr=ytr):
                return jnp.mean((jax.vmap(model)(xtr[idx])[:, 0] - ytr[idx]) ** 2)

            start = time.perf_counter()
            emlp = se.EMLP(rep_in, se.Scalar(group), width, depth, dtype=F32,
                           key=jax.random.key(0))  # fmt: skip
            build_s = time.perf_counter() - start
            mlp = eqx.nn.MLP(rep_in.size, 1, width, depth, jax.nn.silu, dtype=F32,
                             key=jax.random.key(0))  # fmt: skip
            models = {}
            for mname, model in (("EMLP (ours)", emlp), ("MLP", mlp)):
                # all steps in one lax.scan in one jit (no convolutions)
                trained, losses, wall = h.train(model, loss, h.adam_cosine(lr, steps), batches)
                pred = jax.jit(jax.vmap(trained))(xte)[:, 0]
                key = jax.random.key(41)
                x0 = xte[0]
                inv32 = check.equivariance_error(trained, group, x0, key, rep_in=rep_in,
                                                 rep_out=lambda g, y: y)  # fmt: skip
                inv64 = None
                if not quick and mname.startswith("EMLP"):
                    inv64 = float(check.equivariance_error(
                        h.cast(trained, F64), group, x0.astype(F64), key, rep_in=rep_in,
                        rep_out=lambda g, y: y,
                    ))  # fmt: skip
                models[mname] = dict(
                    params=_nparams(trained), train_s=wall,
                    test_mse=float(jnp.mean((pred - yte) ** 2)),
                    prediction_std=float(jnp.std(pred)),
                    final_train_loss=float(np.mean(losses[-50:])),
                    loss_curve=losses[:: max(1, steps // 100)].tolist(),
                    invariance_error_float32=float(inv32), invariance_error_float64=inv64,
                )  # fmt: skip
                if mname.startswith("EMLP"):
                    models[mname]["build_s"] = build_s
                progress.update(f"{tname} n={n} {mname}")
            rows[n] = models
        out["tasks"][tname] = dict(group=group.name, rep_in=f"{rep_in.size}-dim",
                                   crosscheck_vs_emlp=_crosscheck_emlp(task, peers),
                                   sizes=rows)  # fmt: skip
    return out


def _emlp_step_times(peers: dict, progress) -> dict:
    """EMLP's gradient step, ours against emlp's (its flax port, float32), at the same width
    (128) and depth (2), batch 256: each library's own `uniform_rep` for the hidden layers.
    Build times with every cache cleared first (the basis solves of all layers)."""
    import emlp.groups as eg
    import emlp.nn.flax as ef
    import emlp.reps as er

    out = {}
    tasks = (
        ("O(5): 2V -> scalar", se.O(5), eg.O(5), 2),
        ("Lorentz: 4V -> scalar", se.Lorentz(), eg.Lorentz(), 4),
    )
    for name, group, egroup, copies in tasks:
        rep_in = copies * se.V(group)
        x = jax.random.normal(jax.random.key(1), (_BATCH, rep_in.size), F32)
        ours, build_ours = _timed(lambda: se.EMLP(rep_in, se.Scalar(group), 128, 2, dtype=F32,
                                                  key=jax.random.key(0)), peers)  # fmt: skip
        params, static = eqx.partition(ours, eqx.is_inexact_array)

        def ours_loss(p, x, static=static):
            return jnp.mean(jax.vmap(eqx.combine(p, static))(x) ** 2)

        ours_grad, _ = h.compile_fn(jax.grad(ours_loss), params, x)
        _clear_caches(peers)
        with jax.enable_x64(False), _quiet():
            start = time.perf_counter()
            peer = ef.EMLP(copies * er.V, er.Scalar, egroup, ch=128, num_layers=2)
            peer_params = peer.init(jax.random.PRNGKey(0), x)
            build_peer = time.perf_counter() - start

            def peer_loss(p, x, peer=peer):
                return jnp.mean(peer.apply(p, x) ** 2)

            peer_grad, _ = h.compile_fn(jax.grad(peer_loss), peer_params, x)
        t = h.time_interleaved({"ours": (ours_grad, (params, x)),
                                "emlp": (peer_grad, (peer_params, x))}, 5)  # fmt: skip
        out[name] = dict(
            ours_build_s=build_ours, emlp_build_s=build_peer, ours_grad_s=t["ours"].best,
            emlp_grad_s=t["emlp"].best, ours_params=_nparams(ours),
            emlp_params=int(sum(a.size for a in jax.tree_util.tree_leaves(peer_params))),
        )  # fmt: skip
        progress.update(f"EMLP step {name}")
    return out


# --- floors ------------------------------------------------------------------------------------


def _floors(peer: dict, conv: dict, certs: dict, digits: dict, regression: dict) -> list:
    floors = []
    for lib in ("emlp", "e3nn"):
        for name, r in peer[lib].items():
            floors.append(h.Floor(
                f"(1) {name}: |basis count ours - {lib}|", abs(r["count_ours"] - r["count_peer"]),
                0, f"ours {r['count_ours']}, {lib} {r['count_peer']}",
            ))  # fmt: skip
    seen = set()
    for lib in ("emlp", "e3nn"):
        for name, r in peer[lib].items():
            if name in seen:  # the same layer measured in both comparisons: report it once
                continue
            seen.add(name)
            floors.append(h.Floor(
                f"(1) EquivariantLinear {name}: float32 equivariance error", r["error_float32"],
                _ERR_FLOOR, f"float64 {h.fmt(r['error_float64'], '.1e')}; {lib}'s layer on "
                f"the same samples (float32) {r['peer_error_float32']:.1e}",
            ))  # fmt: skip
            f = r["forward"]
            floors.append(h.Floor(
                f"(2) EquivariantLinear {name}: forward time / eqx.nn.Linear "
                f"({r['size_in']} -> {r['size_out']}), batch {_BATCH}",
                f["ours"]["ratio_to_reference"], _TIME_FLOOR,
                f"{f['ours']['best_s'] * 1e6:.0f} us vs {f['dense']['best_s'] * 1e6:.0f} us "
                f"(best); W formed once: {f['ours, W formed once']['ratio_to_reference']:.2f}x",
            ))  # fmt: skip
    for name, r in conv["layers"].items():
        floors.append(h.Floor(f"(1) {name}: float32 equivariance error ({r['check_group']})",
                              r["error_float32"], _ERR_FLOOR, "exact elements"))  # fmt: skip
        f = r["forward"]
        floors.append(h.Floor(
            f"(2) {name}: forward time / plain Conv2d of the same array sizes, batch {_BATCH}",
            f["ours"]["ratio_to_reference"], _TIME_FLOOR,
            f"{f['ours']['best_s'] * 1e3:.2f} ms vs {f['plain conv']['best_s'] * 1e3:.2f} ms",
        ))  # fmt: skip
    a = conv.get("steerable_arbitrary_angles")
    floors += [] if a is None else [h.Floor(
        "(1) SteerableConv SO(2), arbitrary angles (33x33 smooth input, kernel 7): "
        "equivariance error vs the documented bound", a["error_float64"], a["bound"],
        "bilinear resampling of the rotated input",
    )]  # fmt: skip
    for name, r in certs.items():
        floors.append(h.Floor(f"(1) {name}: float32 equivariance error", r["error_float32"],
                              _ERR_FLOOR, f"group {r['group']}"))  # fmt: skip
    for name, r in digits["nets"].items():
        if r["exact_group"] is None:
            continue
        floors.append(h.Floor(
            f"(3) digits, trained {name}: float32 invariance error under 90-degree rotations",
            r["invariance_error_c4_float32"], _ERR_FLOOR,
            f"test accuracy upright {r['acc_upright']:.3f}, rotated by k x 90 deg "
            f"{r['acc_rot90']:.3f}",
        ))  # fmt: skip
    for tname, t in regression["tasks"].items():
        for n, models in t["sizes"].items():
            e, m = models["EMLP (ours)"], models["MLP"]
            floors.append(h.Floor(
                f"(3) {tname}, {n} training points: EMLP test MSE / MLP test MSE",
                e["test_mse"] / max(m["test_mse"], 1e-30), 1.0,
                f"{e['test_mse']:.3g} vs {m['test_mse']:.3g} (standardised targets)",
            ))  # fmt: skip
    return floors


# --- the suite ---------------------------------------------------------------------------------


def run(*, quick: bool) -> dict:
    """Run the suite; print tables and floors; write JSON and PNGs under results/."""
    h.header("equivariant", quick)
    loads = dict(start=os.getloadavg())
    start = time.perf_counter()
    peers = _peers()
    walls = dict(imports=time.perf_counter() - start)
    for label, p in peers.items():
        status = f"{p['version']}" if p["available"] else f"NOT AVAILABLE ({p['error']})"
        h.say(f"  peer {label}: {status}")
        if "note" in p:
            h.say(f"    {p['note']}")
    n_peer = (len(_emlp_cases(quick)) if peers["emlp"]["available"] else 0) + (
        len(_e3nn_cases(quick)) if peers["e3nn-jax"]["available"] else 0
    )
    n_reg = len(_TASKS) * (1 if quick else 2) * 2 + (
        0 if quick or not peers["emlp"]["available"] else 2
    )
    n_conv, n_digits = (2, 4) if quick else (6, 5)
    progress = h.Progress(n_peer + n_conv + 1 + n_digits + n_reg, "equivariant")
    start = time.perf_counter()
    peer = _peer_section(quick, peers, progress)
    walls["peers"] = time.perf_counter() - start
    start = time.perf_counter()
    conv = _conv_section(quick, progress)
    certs = _certificates(quick, progress)
    walls["convolutions"] = time.perf_counter() - start
    start = time.perf_counter()
    digits = _digits(quick, progress)
    walls["digits"] = time.perf_counter() - start
    start = time.perf_counter()
    regression = _regression(quick, peers, progress)
    if not quick and peers["emlp"]["available"]:
        regression["emlp_step_times"] = _emlp_step_times(peers, progress)
    walls["regression"] = time.perf_counter() - start
    loads["end"] = os.getloadavg()
    progress.close()

    report.print_tables(peers, peer, conv, certs, digits, regression)
    floors = _floors(peer, conv, certs, digits, regression)
    results = dict(peers=peers, section_wall_s=walls, load_average=loads, peer_comparison=peer,
                   convolutions=conv, certificates=certs, digits=digits,
                   regression=regression)  # fmt: skip
    return h.finish(
        "equivariant",
        quick,
        results,
        floors,
        lambda suffix: report.write_plots(peer, conv, certs, digits, regression, suffix),
        notes=dict(
            basis="count: the number of equivariant basis elements (for direct sums, summed over "
            "pairs of components with their multiplicities: the weights of EquivariantLinear; "
            "emlp: columns of (rep_in >> rep_out).equivariant_basis(); e3nn: num_weights of "
            "FunctionalLinear between the irreps of the tensor representations). Time: every "
            "library's caches cleared before each call; 'first' includes one-off costs (e.g. "
            "JIT compilation inside emlp's solver), 'best' is the best of the repeats; ours "
            "includes each distinct component pair's solve; e3nn's the change of basis of both "
            "sides (reduced_tensor_product_basis) and the FunctionalLinear",
            forward=f"batch {_BATCH}, float32, jitted with parameters as arguments; ours and "
            "the plain layers under jax.vmap; emlp's flax Linear and e3nn's equinox Linear on "
            "the whole batch; best of interleaved rounds, ratio = median over rounds of the "
            "per-round ratio to the plain layer ('dense' / 'plain conv'); call overhead "
            "included (it dominates for the smallest layers). 'ours, W formed once': "
            "x @ layer.matrix().T, a diagnostic of contraction order, not a layer",
            convolutions="the plain conv has the same array sizes: in/out channels x |G| for "
            "group convolutions, in_type.size/out_type.size for steerable ones; errors on the "
            "group's exact elements (p4: C4, p4m: D4, steerable: C4) with random inputs",
            errors="check.equivariance_error: max over 16 group.sample draws of "
            "|f(g.x) - g.f(x)| / |f(x)|; Lorentz samples are exp of N(0, 1) combinations of "
            "rotations and boosts, so float32 rounding of g.x is amplified by large boosts",
            digits="trained on upright digits only (Adam, cosine schedule); 'rot90': each test "
            "image rotated by its own random multiple of 90 degrees (exact); 'random angle': "
            "by its own uniform angle (bilinear, zero outside, with FieldType.act); "
            "invariance errors of the trained nets under C4 (exact) and SO(2) (bilinear) on "
            "the first test image",
            regression="targets standardised with the training mean/std, inputs scaled per "
            "vector (emlp's invariant standardisation); test MSE on the standardised targets; "
            "MLP of the same width and depth (SiLU); crosscheck_vs_emlp: max relative "
            "difference of our target formula from emlp.datasets on emlp's own samples",
            escnn=peers["escnn"].get("note", ""),
            load_average="os.getloadavg() (1, 5, 15 min) at the start and the end: the machine "
            "is shared; under oversubscription the BLAS/XLA thread pools of every library "
            "slow down by large factors, so compare times within one run only",
        ),
    )
