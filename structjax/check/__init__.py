"""Certificates: functions that measure a structural property and return a number."""

from ._adjoint import (
    AdjointConsistency as AdjointConsistency,
    adjoint_consistency as adjoint_consistency,
)
from ._dissipation import (
    DissipationError as DissipationError,
    dissipation_error as dissipation_error,
)
from ._equivariance import equivariance_error as equivariance_error
from ._hamiltonian import (
    EnergyError as EnergyError,
    conformal_symplecticity_error as conformal_symplecticity_error,
    constraint_violation as constraint_violation,
    convergence_order as convergence_order,
    energy_error as energy_error,
    reversibility_error as reversibility_error,
    symplecticity_error as symplecticity_error,
)
from ._lie import lie_group_error as lie_group_error
from ._manifolds import (
    RetractionCheck as RetractionCheck,
    check_retraction as check_retraction,
    check_rgrad as check_rgrad,
    constraint_error as constraint_error,
)
from ._nn import (
    inversion_error as inversion_error,
    lipschitz_lower_bound as lipschitz_lower_bound,
    log_det_error as log_det_error,
)
