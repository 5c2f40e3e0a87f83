"""The plumbing the structjax optimisers share: one manifold per parameter leaf, leaves of
one manifold and shape batched together, the dtype policy, the checked learning rate.

- `manifolds` is one manifold (or None, Euclidean) for every leaf, or a pytree of manifolds
  matched to the parameters *up to* its own leaves (a `Product` leaf matches a tuple of
  arrays, a None leaf any subtree). A `Product` is split into its factors: every map the
  optimisers use acts factor by factor, and Riemannian Adam keeps one second moment per
  factor, as on the products of Bécigneul & Ganea (2019, Sec. 3).
- `tree_map` over manifold leaves stacks the leaves of equal manifolds, shapes and dtypes and
  calls the geometry once on the stack (manifolds batch over leading axes), so a model of
  hundreds of weights compiles a handful of retractions, not hundreds.
- Integer, boolean and complex parameters are refused (the geometry is real); float16 and
  bfloat16 leaves are computed in float32 and the updates cast back (optax's `mu_dtype`).
"""

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import optax
from jaxtyping import Array

from .._guards import (
    check_real_floating,
    compute_dtype,
    guard,
    hyperparameter,
    point_tolerance,
    tie,
    upcast,
)
from ..manifolds._base import AbstractManifold
from ..manifolds._product import Product

# One manifold, None (Euclidean), or a pytree of manifolds and Nones matched to the
# parameters up to its leaves. Not `PyTree[...]`: a manifold is itself a pytree of arrays.
Manifolds = Any


def concrete(*xs) -> bool:
    """Whether hyperparameters are known now (not traced, as under `inject_hyperparams`)."""
    tracer = jax.core.Tracer  # pyright: ignore[reportAttributeAccessIssue]  # public, not in stubs
    return not any(isinstance(x, tracer) for x in jtu.tree_leaves(xs))


def is_manifold_leaf(x) -> bool:
    return x is None or isinstance(x, AbstractManifold)


def _unchecked(m):
    """`m` with its methods' own point checks off: an optimiser checks its starting point
    once, at `init`, and every later point is its own retraction."""
    if m is None or not getattr(m, "checks", False):
        return m
    return dataclasses.replace(m, checks=False)


def _leaf_manifolds(m, sub, where: str, out: list, names: list, hot: bool) -> None:
    """Append one manifold (None: Euclidean) and one name per array leaf of `sub`."""
    if isinstance(m, Product):
        m.check_shape(sub, where)
        for i, (mi, si) in enumerate(zip(m.manifolds, sub)):
            _leaf_manifolds(mi, si, f"{where}[{i}]", out, names, hot)
        return
    for path, leaf in jtu.tree_flatten_with_path(sub)[0]:
        name = where + jtu.keystr(path)
        if m is not None:
            m.check_shape(leaf, name)
        out.append(_unchecked(m) if hot else m)
        names.append(name)


def manifold_list(manifolds, params, hot: bool = True) -> tuple[list, list, Any]:
    """One manifold (None for Euclidean) and one name per leaf of `params`, and its treedef
    (a `jax.tree_util.PyTreeDef`).
    `hot`: the manifolds for the steps, with their methods' own point checks off."""
    treedef = jtu.tree_structure(params)
    ms: list = []
    names: list = []
    if is_manifold_leaf(manifolds):
        _leaf_manifolds(manifolds, params, "params", ms, names, hot)
        return ms, names, treedef
    mdef = jtu.tree_structure(manifolds, is_leaf=is_manifold_leaf)
    try:
        subtrees = mdef.flatten_up_to(params)
    except (ValueError, TypeError) as e:
        raise ValueError(
            "`manifolds` must be one manifold, or a pytree of manifolds (None for "
            "Euclidean) with the structure of the parameters; got\n"
            f"  manifolds: {mdef}\n  params:    {treedef}"
        ) from e
    mleaves = jtu.tree_leaves(manifolds, is_leaf=is_manifold_leaf)
    flat = jtu.tree_flatten_with_path(manifolds, is_leaf=is_manifold_leaf)[0]
    paths = [jtu.keystr(p) for p, _ in flat]
    bad = [type(m).__name__ for m in mleaves if not is_manifold_leaf(m)]
    if bad:
        raise ValueError(
            f"`manifolds` must hold a manifold or None at each parameter leaf, got {bad}."
        )
    for m, sub, path in zip(mleaves, subtrees, paths):
        _leaf_manifolds(m, sub, "params" + path, ms, names, hot)
    return ms, names, treedef


def _key(m, leaf):
    try:
        hash(m)
        mk = m
    except TypeError:  # a manifold with unhashable fields: its own group
        mk = id(m)
    return (mk, tuple(jnp.shape(leaf)), jnp.result_type(leaf))


def groups(ms, leaves) -> list[list[int]]:
    """Indices of the leaves sharing manifold, shape and dtype (Euclidean leaves alone)."""
    out: dict = {}
    for i, (m, leaf) in enumerate(zip(ms, leaves)):
        out.setdefault(("euclidean", i) if m is None else _key(m, leaf), []).append(i)
    return list(out.values())


def tree_map(fn: Callable, manifolds, params, *trees, n_out: int = 0, batch: bool = False
             ) -> Any:  # fmt: skip
    """`fn(manifold_or_None, param_leaf, *leaves)` over the leaves, as a tree like `params`
    (with `n_out`, `fn` returns that many arrays, and this a tuple of that many trees).

    Inputs are in the compute dtype (16-bit leaves in float32) and outputs are returned as
    `fn` gives them. With `batch`, the leaves of one manifold, shape and dtype are stacked and
    `fn` runs once on the stack (it must map batches to batches, as manifold methods do).
    Leaf by leaf is the default: XLA compiles the identical per-leaf programs once, while
    every slice out of a stack is a program of its own; `riemannian_step` batches instead,
    stacking once per step and keeping its state stacked.
    """
    ms, _, treedef = manifold_list(manifolds, params)
    flat = [[upcast(jnp.asarray(x)) for x in treedef.flatten_up_to(t)] for t in (params, *trees)]
    k = max(n_out, 1)
    out: list = [[None] * len(ms) for _ in range(k)]
    for idx in groups(ms, flat[0]) if batch else [[i] for i in range(len(ms))]:
        m = ms[idx[0]]
        if len(idx) == 1:
            res = fn(m, *(f[idx[0]] for f in flat))
            for r, o in zip(res if n_out else (res,), out):
                o[idx[0]] = r
            continue
        res = fn(m, *(jnp.stack([f[i] for i in idx]) for f in flat))
        for r, o in zip(res if n_out else (res,), out):
            for j, i in enumerate(idx):
                o[i] = r[j]
    trees_out = tuple(treedef.unflatten(o) for o in out)
    return trees_out if n_out else trees_out[0]


def cast_like(tree, like):
    """`tree`'s leaves in the dtypes of `like`'s (updates leave in the params' dtypes)."""
    return jtu.tree_map(lambda u, x: u.astype(jnp.result_type(x)), tree, like)


def zeros_in_compute_dtype(params):
    """Moments and momenta: zeros like `params`, float32 for 16-bit leaves."""
    return jtu.tree_map(lambda x: jnp.zeros(jnp.shape(x), compute_dtype(jnp.result_type(x))),
                        params)  # fmt: skip


def copy_params(params):
    """The parameters as fresh JAX arrays (the state must not alias a caller's NumPy array)."""
    return jtu.tree_map(lambda x: jnp.array(x, copy=True), params)


def check_params(params, call: str, name: str = "params") -> None:
    """Refuse (trace time, `TypeError`) integer, boolean and complex leaves."""
    check_real_floating(params, call, name)


def as_dtype(h, like):
    """A hyperparameter in the dtype of `like` (Python numbers stay weakly typed)."""
    if isinstance(h, (int, float)) and not isinstance(h, bool):
        return h
    return jnp.asarray(h).astype(jnp.result_type(like))


def first_leaf_dtype(tree):
    leaves = jtu.tree_leaves(tree)
    return compute_dtype(jnp.result_type(leaves[0])) if leaves else jnp.result_type(float)


def use_flag(tree, flag):
    """`tree` made to depend on the boolean scalar `flag` (True when checks passed), so that a
    check attached to `flag` stays in a compiled program that uses `tree`: an exact product
    with the flag as 1 (`structjax._guards.attach` says why not a select), fused by XLA into
    the producer."""
    return jtu.tree_map(lambda u: tie(jnp.asarray(u), flag)[0], tree)


def check_on_manifolds(manifolds, params, call: str, checks: bool = True) -> Array:
    """A flag, True, carrying the refusal of a parameter off its manifold: raised at once when
    concrete (naming the leaf), attached for run time when traced (one check per group of
    leaves; the caller must use the flag). The test is the manifold's own `check_point`
    (its tolerance for the dtype), or `constraint_error <= point_tolerance` without one."""
    flag = jnp.ones((), bool)
    if not checks:
        return flag
    ms, names, treedef = manifold_list(manifolds, params, hot=False)
    leaves = [jnp.asarray(x) for x in treedef.flatten_up_to(params)]
    traced = not concrete(leaves)
    for idx in groups(ms, leaves) if traced else [[i] for i in range(len(ms))]:
        m = ms[idx[0]]
        if m is None:
            continue
        name = ", ".join(names[i] for i in idx[:3]) + (", ..." if len(idx) > 3 else "")
        x = leaves[idx[0]] if len(idx) == 1 else jnp.stack([leaves[i] for i in idx])
        if hasattr(m, "check_point"):
            x = m.check_point(x, name, call)
            if traced:  # the check rides on `x`: make the flag depend on it
                flag = flag & jnp.isfinite(jnp.sum(upcast(x)))
            continue
        size = int(np.prod(m.point_shape))
        tol = point_tolerance(jnp.result_type(x), size)
        err = jnp.max(m.constraint_error(upcast(x)))
        flag = guard(flag, ~(err <= tol),  # NaN is off the manifold too
                     f"`{call}` needs `{name}` on {m} (constraint error <= {tol:.0e}): it is "
                     "off its manifold. Start from `manifold.project(x)` or "
                     "`manifold.random_point(...)`.", found=err)  # fmt: skip
    return flag


# --- a learning rate (constant or schedule) checked where it is used -------------------------


class ScaleByLearningRateState(NamedTuple):
    count: Array


def scale_by_learning_rate(
    learning_rate, call: str, ok, expected: str, checks: bool = True
) -> optax.GradientTransformation:
    """`updates * -learning_rate`, the learning rate (or the schedule's value at each step)
    refused by `hyperparameter` outside `ok` (NaN always): eagerly, or at run time when
    traced, a scalar test per step."""
    schedule = callable(learning_rate)
    if not schedule:
        learning_rate = hyperparameter(learning_rate, call, "learning_rate", ok, expected,
                                       checks=checks)  # fmt: skip

    def init_fn(params):
        del params
        return ScaleByLearningRateState(jnp.zeros((), jnp.int32))

    def update_fn(updates, state, params=None):
        del params
        lr = learning_rate
        if schedule:
            lr = hyperparameter(learning_rate(state.count), call,
                                "learning_rate (the schedule's value)", ok, expected,
                                checks=checks)  # fmt: skip
        out = jtu.tree_map(lambda u: u * -as_dtype(lr, u), updates)
        return out, ScaleByLearningRateState(jnp.asarray(optax.safe_int32_increment(state.count)))

    return optax.GradientTransformation(init_fn, update_fn)


def learning_rate_value(learning_rate, count, call: str, ok, expected: str, checks: bool = True):
    """The step's learning rate: a constant (checked when the optimiser was built) or the
    schedule's value at `count`, checked here (a scalar test)."""
    if not callable(learning_rate):
        return learning_rate
    return hyperparameter(learning_rate(count), call, "learning_rate (the schedule's value)",
                          ok, expected, checks=checks)  # fmt: skip


def finite_nonnegative(v):
    return (v >= 0) & (v < np.inf)


def finite_positive(v):
    return (v > 0) & (v < np.inf)
