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
