"""The optimisation loop the optimiser tests share: `steps` updates in one `lax.scan`."""

import jax
import optax


def run(opt, f, x, steps):
    """Minimise `f` from `x` with `opt`; the final parameters and optimiser state."""
    state = opt.init(x)

    def body(carry, _):
        x, state = carry
        updates, state = opt.update(jax.grad(f)(x), state, x)
        return (optax.apply_updates(x, updates), state), None

    (x, state), _ = jax.lax.scan(body, (x, state), None, length=steps)
    return x, state


# --- the conformance list: every structjax optimiser, as a factory of (manifolds, checks) ----
# Adding an optimiser means adding it here; `tests/optim/test_guards.py` then checks it for
# its refusals under jit, dtypes, empty trees, aliasing, recompiles and NaN gradients.

import structjax.manifolds as sm  # noqa: E402
import structjax.optim as so  # noqa: E402

CAYLEY = (sm.Stiefel, sm.Orthogonal, sm.SpecialOrthogonal)

ALL_OPTIMISERS = {
    "riemannian_sgd": lambda m, lr=0.05, checks=True: so.riemannian_sgd(
        lr, manifolds=m, checks=checks
    ),
    "riemannian_sgd_momentum": lambda m, lr=0.05, checks=True: so.riemannian_sgd(
        lr, momentum=0.9, manifolds=m, checks=checks
    ),
    "riemannian_sgd_nesterov": lambda m, lr=0.05, checks=True: so.riemannian_sgd(
        lr, momentum=0.9, nesterov=True, manifolds=m, checks=checks
    ),
    "riemannian_adam": lambda m, lr=0.02, checks=True: so.riemannian_adam(
        lr, manifolds=m, checks=checks
    ),
    "riemannian_amsgrad": lambda m, lr=0.02, checks=True: so.riemannian_adam(
        lr, amsgrad=True, manifolds=m, checks=checks
    ),
    "cayley_sgd": lambda m, lr=0.05, checks=True: so.cayley_sgd(lr, manifolds=m, checks=checks),
    "cayley_adam": lambda m, lr=0.02, checks=True: so.cayley_adam(lr, manifolds=m, checks=checks),
    "conformal_symplectic_momentum": lambda m, lr=0.2, checks=True: (
        so.conformal_symplectic_momentum(lr, 2.0, manifolds=m, checks=checks)
    ),
    "hamiltonian_descent": lambda m, lr=0.2, checks=True: so.hamiltonian_descent(
        lr, 2.0, so.relativistic_kinetic(), manifolds=m, checks=checks
    ),
    "relativistic_gd": lambda m, lr=0.2, checks=True: so.relativistic_gd(
        lr, 2.0, 1.0, 5.0, manifolds=m, checks=checks
    ),
}


# One optimiser per code path (the slower checks run these): the batched Riemannian step
# with momentum and with Adam, its Cayley form, conformal Euler (exact and Maddison damping,
# a non-quadratic kinetic energy) and relativistic GD.
CODE_PATHS = [
    "riemannian_sgd_nesterov",
    "riemannian_adam",
    "cayley_adam",
    "conformal_symplectic_momentum",
    "hamiltonian_descent",
    "relativistic_gd",
]


def cayley_only(name: str) -> bool:
    """The Cayley optimisers take only Stiefel-type manifolds (and None)."""
    return name.startswith("cayley")
