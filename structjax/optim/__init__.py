"""Optimisers as optax gradient transformations."""

from ._cayley import (
    cayley_adam as cayley_adam,
    cayley_sgd as cayley_sgd,
    scale_by_cayley_bound as scale_by_cayley_bound,
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
