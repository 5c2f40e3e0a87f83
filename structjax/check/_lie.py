"""Certificate for Lie-group integrators: how far a matrix is from its group."""

import jax.numpy as jnp
from jaxtyping import Array, Float

GROUPS = ("SO", "O", "SE", "Stiefel")


def lie_group_error(group: str, y: Float[Array, "... n p"]) -> Float[Array, "..."]:
    """The distance of `y` (leading axes batch) from `group`, one number per matrix
    (structure first, as `constraint_error(manifold, x)`):

    - `"O"` / `"Stiefel"`: $\\|Y^\\top Y - I\\|_F$ (orthonormal columns);
    - `"SO"`: that, plus $|\\det Y - 1|$ (the orientation);
    - `"SE"`: for $\\begin{pmatrix} R & v \\\\ 0 & 1 \\end{pmatrix}$, the `"SO"` error of $R$
      plus the distance of the last row from $(0, \\dots, 0, 1)$.
    """
    if group not in GROUPS:
        raise ValueError(f"`group` must be one of {GROUPS}, got {group!r}.")
    y = jnp.asarray(y)
    if y.ndim < 2:
        raise ValueError(f"`y` must be a matrix (batch of matrices), got shape {y.shape}.")
    if group == "SE":
        n = y.shape[-1]
        last = jnp.zeros(n, y.dtype).at[-1].set(1.0)
        row = jnp.linalg.norm(y[..., -1, :] - last, axis=-1)
        return lie_group_error("SO", y[..., :-1, :-1]) + row
    p = y.shape[-1]
    err = jnp.linalg.norm(jnp.swapaxes(y, -1, -2) @ y - jnp.eye(p, dtype=y.dtype), axis=(-2, -1))
    if group == "SO":
        if y.shape[-2] != p:
            raise ValueError(f"SO(n) elements are square, got shape {y.shape}.")
        err = err + jnp.abs(jnp.linalg.det(y) - 1)
    return err
