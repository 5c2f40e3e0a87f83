"""Every structural layer of `structjax.nn`, with what it promises: one list, checked by
`test_conformance.py`. Adding a layer means adding a `Case` here."""

import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu

import structjax.integrators as si
import structjax.nn as snn

DIM = 3  # q, p in R^3; vectors in R^6


@dataclasses.dataclass(frozen=True)
class Case:
    """`make(key)` builds the layer (float64); `example(key)` one input.

    - `bijection`: has forward/inverse and log-dets to check;
    - `symplectic`: maps `(q, p)` symplectically (`apply` gives the map if not `layer(y)`);
    - `lipschitz`: the layer's `lipschitz_bound` must hold (`apply` again);
    - `perturb`: randomise every parameter (so zero-initialised biases and small weights do
        not make the check trivial).
    """

    name: str
    make: Callable
    example: Callable
    bijection: bool = False
    symplectic: bool = False
    lipschitz: bool = False
    perturb: bool = True
    apply: Callable | None = None

    def __repr__(self):
        return self.name


def vector(key, dim=2 * DIM):
    return jax.random.normal(key, (dim,))


def phase(key):
    return tuple(jax.random.normal(k, (DIM,)) for k in jax.random.split(key))


@eqx.filter_jit
def perturb(layer, key, scale=0.3):
    """Add noise to every inexact array of `layer` (one compiled call: eager draws compile
    once per shape)."""
    leaves, tree = jtu.tree_flatten(layer)
    keys = iter(jax.random.split(key, len(leaves)))
    leaves = [
        x + scale * jax.random.normal(next(keys), x.shape, x.dtype) if eqx.is_inexact_array(x)
        else x
        for x in leaves
    ]  # fmt: skip
    return jtu.tree_unflatten(tree, leaves)


def _separable_block(key):
    net = snn.SeparableHamiltonianNet(DIM, width=8, key=key)
    fields = tuple(t.vector_field for t in net.terms)
    return snn.ODEBlock(fields, si.VelocityVerlet(), num_steps=4, dt=0.1)


def _hnn_step(layer, y):
    return layer.rollout(y, dt=0.1, num_steps=3, save_every=None).y1


def _snn_step(layer, y):
    return layer.rollout(y, dt=0.1, num_steps=3, solver=si.BlanesMoan4General(), save_every=None).y1


def _iresnet_flow(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return snn.Chain(
        [
            snn.AffineCoupling(2 * DIM, 16, key=k1),
            snn.Invert(snn.InvertibleResidual(2 * DIM, 16, coefficient=0.6, key=k2)),
            snn.AdditiveCoupling(2 * DIM, 16, flip=True, key=k3),
        ]
    )


def _lipschitz_net(key):
    k1, k2 = jax.random.split(key)
    return eqx.nn.Sequential(
        [snn.AOLLinear(6, 8, key=k1), snn.GroupSort(2), snn.OrthogonalLinear(8, 4, key=k2)]
    )


def _orthogonal(parametrization, n_in, n_out):
    return lambda key: snn.OrthogonalLinear(n_in, n_out, parametrization=parametrization, key=key)


BIJECTIONS = [
    Case("AffineCoupling", lambda k: snn.AffineCoupling(6, 16, key=k), vector, bijection=True),
    Case(
        "AffineCoupling(flip)",
        lambda k: snn.AffineCoupling(6, 16, flip=True, key=k),
        vector,
        bijection=True,
    ),
    Case("AdditiveCoupling", lambda k: snn.AdditiveCoupling(6, 16, key=k), vector, bijection=True),
    Case("revnet_block", lambda k: snn.revnet_block(6, 16, key=k), vector, bijection=True),
    Case(
        "InvertibleResidual",
        lambda k: snn.InvertibleResidual(6, 16, coefficient=0.7, key=k),
        vector,
        bijection=True,
    ),
    Case("Chain(affine, Invert(iresnet), additive)", _iresnet_flow, vector, bijection=True),
    Case(
        "Reversible(affine, stored)",
        lambda k: snn.Reversible(lambda k: snn.AffineCoupling(6, 8, key=k), 4, "stored", key=k),
        vector,
        bijection=True,
    ),
    Case(
        "Reversible(affine)",
        lambda k: snn.Reversible(lambda k: snn.AffineCoupling(6, 8, key=k), 4, key=k),
        vector,
        bijection=True,
    ),
    Case(
        "SymplecticFlow(GSympNet)",
        lambda k: snn.SymplecticFlow(snn.GSympNet(DIM, 3, 8, key=k), 6),
        vector,
        bijection=True,
    ),
]

SYMPLECTIC = [
    Case("GradientModule(up)", lambda k: snn.GradientModule(DIM, 8, "up", key=k), phase,
         bijection=True, symplectic=True),
    Case("GradientModule(low)", lambda k: snn.GradientModule(DIM, 8, "low", key=k), phase,
         bijection=True, symplectic=True),
    Case("ActivationModule", lambda k: snn.ActivationModule(DIM, "low", key=k), phase,
         bijection=True, symplectic=True),
    Case("LinearModule", lambda k: snn.LinearModule(DIM, 3, key=k), phase,
         bijection=True, symplectic=True),
    Case("GSympNet", lambda k: snn.GSympNet(DIM, 4, 8, key=k), phase,
         bijection=True, symplectic=True),
    Case("LASympNet", lambda k: snn.LASympNet(DIM, 3, 2, key=k), phase,
         bijection=True, symplectic=True),
    Case("VerletBlock", lambda k: snn.VerletBlock(DIM, 8, 0.5, key=k), phase,
         bijection=True, symplectic=True),
    Case("Reversible(VerletBlock)",
         lambda k: snn.Reversible(lambda k: snn.VerletBlock(DIM, 8, 0.5, key=k), 6, key=k),
         phase, bijection=True, symplectic=True),
    Case("HamiltonianNet.rollout", lambda k: snn.HamiltonianNet(DIM, 8, key=k), phase,
         symplectic=True, apply=_hnn_step),
    Case("SeparableHamiltonianNet.rollout",
         lambda k: snn.SeparableHamiltonianNet(DIM, 8, key=k), phase,
         symplectic=True, apply=_snn_step),
    Case("ODEBlock(VelocityVerlet)", _separable_block, phase, symplectic=True),
]  # fmt: skip

LIPSCHITZ = [
    Case("SpectralNormLinear", lambda k: snn.SpectralNormLinear(6, 4, 0.5, key=k), vector,
         lipschitz=True),
    Case("AOLLinear", lambda k: snn.AOLLinear(6, 9, key=k), vector, lipschitz=True),
    Case("GroupSort", lambda k: snn.GroupSort(3), vector, lipschitz=True),
    Case("OrthogonalLinear(stiefel)", _orthogonal("stiefel", 6, 9), vector, lipschitz=True,
         perturb=False),
    Case("OrthogonalLinear(cayley)", _orthogonal("cayley", 6, 4), vector, lipschitz=True),
    Case("OrthogonalLinear(expm)", _orthogonal("expm", 6, 9), vector, lipschitz=True),
    Case("OrthogonalLinear(bjorck)", _orthogonal("bjorck", 6, 4), vector, lipschitz=True),
    Case("OrthogonalConv2d", lambda k: snn.OrthogonalConv2d(2, 3, 5, key=k),
         lambda k: jax.random.normal(k, (2, 5, 5)), lipschitz=True),
    Case("AOL-GroupSort-Orthogonal", _lipschitz_net, vector, lipschitz=True, perturb=False),
]  # fmt: skip

# A continuous flow inverts only to its solver's accuracy: not in BIJECTIONS (exact to 1e-10).
OTHERS = [Case("CNF", lambda k: snn.CNF(6, width=16, num_steps=8, key=k), vector)]
CASES = BIJECTIONS + SYMPLECTIC + LIPSCHITZ + OTHERS


def build(case: Case, key):
    k1, k2 = jax.random.split(key)
    layer = case.make(k1)
    return perturb(layer, k2) if case.perturb else layer


def lipschitz_bound(layer) -> float:
    if isinstance(layer, eqx.nn.Sequential):
        bound = 1.0
        for sub in layer.layers:
            bound *= sub.lipschitz_bound
        return bound
    return layer.lipschitz_bound


def apply(case: Case, layer, x):
    return case.apply(layer, x) if case.apply is not None else layer(x)


def to_float32(tree):
    return jtu.tree_map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, tree)
