"""Optimisers as optax gradient transformations."""

from ._cayley import (
    cayley_adam as cayley_adam,
    cayley_sgd as cayley_sgd,
    scale_by_cayley_bound as scale_by_cayley_bound,
)
from ._conformal import (
    ConformalMomentumState as ConformalMomentumState,
    RelativisticState as RelativisticState,
    conformal_symplectic_momentum as conformal_symplectic_momentum,
    franca_parameters as franca_parameters,
    hamiltonian_descent as hamiltonian_descent,
    power_kinetic as power_kinetic,
    quadratic_kinetic as quadratic_kinetic,
    relativistic_gd as relativistic_gd,
    relativistic_kinetic as relativistic_kinetic,
    scale_by_conformal_euler as scale_by_conformal_euler,
    scale_by_relativistic as scale_by_relativistic,
)
from ._riemannian import (
    RiemannianAdamState as RiemannianAdamState,
    RiemannianGradientState as RiemannianGradientState,
    RiemannianMomentumState as RiemannianMomentumState,
    retract as retract,
    riemannian_adam as riemannian_adam,
    riemannian_gradient as riemannian_gradient,
    riemannian_sgd as riemannian_sgd,
    scale_by_riemannian_adam as scale_by_riemannian_adam,
    scale_by_riemannian_momentum as scale_by_riemannian_momentum,
)
from ._step import RiemannianStepState as RiemannianStepState
