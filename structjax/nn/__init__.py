"""Equinox layers whose structure holds by construction."""

from ._bijection import AbstractBijection as AbstractBijection, Chain as Chain, Invert as Invert
from ._cnf import CNF as CNF
from ._coupling import (
    AdditiveCoupling as AdditiveCoupling,
    AffineCoupling as AffineCoupling,
    revnet_block as revnet_block,
)
from ._hamiltonian import (
    HamiltonianNet as HamiltonianNet,
    SeparableHamiltonianNet as SeparableHamiltonianNet,
)
from ._lipschitz import (
    AOLLinear as AOLLinear,
    GroupSort as GroupSort,
    InvertibleResidual as InvertibleResidual,
    SpectralNormLinear as SpectralNormLinear,
)
from ._ode import ODEBlock as ODEBlock
from ._orthogonal import OrthogonalConv2d as OrthogonalConv2d, OrthogonalLinear as OrthogonalLinear
from ._reversible import (
    HamiltonianResNet as HamiltonianResNet,
    Reversible as Reversible,
    VerletBlock as VerletBlock,
)
from ._sympnet import (
    AbstractSympNet as AbstractSympNet,
    ActivationModule as ActivationModule,
    GradientModule as GradientModule,
    GSympNet as GSympNet,
    LASympNet as LASympNet,
    LinearModule as LinearModule,
    SymplecticFlow as SymplecticFlow,
)
