"""Optimisers as optax gradient transformations.

Every structjax optimiser follows one policy:

- **Refusals hold under `jit`.** `init` refuses a starting point off its manifold (by the
  manifold's `check_point`: its tolerance for the dtype), eagerly with a `ValueError` naming
  the leaf, and inside a compiled train step at run time (the check rides on a flag that every
  update uses). Hyperparameters are checked where they are used: constants when the optimiser
  is built, traced ones (as under `optax.inject_hyperparams` or `jax.jit`) and a schedule's
  value at each step at run time, one scalar test each. `checks=False` drops the run-time
  checks; the optimisers run their manifolds' methods without those methods' own point checks
  (the starting point is checked once, every later point is a retraction).
- **Dtypes.** Integer, boolean and complex parameters or gradients are refused (`TypeError`,
  at trace time). Float16/bfloat16 parameters are computed in float32, with moments and
  momenta kept in float32, and their updates cast back: they stay on their manifolds to the
  precision of their dtype.
- **Trees.** `manifolds` is one manifold, or a pytree of manifolds (None: Euclidean) matched to
  the parameters up to its leaves; a `Product` leaf takes a tuple of arrays. Empty trees
  (`{}`, `()`) pass through. The state holds copies, never the caller's arrays.
- **Many leaves.** `riemannian_sgd`, `riemannian_adam`, `cayley_sgd` and `cayley_adam` batch
  the geometry of the leaves that share a manifold, shape and dtype (`RiemannianStepState`).
- **NaN gradients.** Wrap any of them in `optax.apply_if_finite(opt, n)`: a step whose
  gradient is not finite is skipped with the state kept as it was, and the next finite step
  proceeds as if the bad one had not come.
"""

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
