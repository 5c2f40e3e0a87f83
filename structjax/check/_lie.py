"""Certificate for Lie-group integrators: how far a matrix is from its group."""

from typing import Any

import jax.numpy as jnp
from jaxtyping import Array, Float

from .._groups import Group, form_error
from .._linalg import mm, mT
from ..manifolds import AbstractManifold

# The string spellings, kept working: each names a group whose size comes from the matrix.
GROUPS = ("SO", "O", "SE", "Stiefel")


def group_name(group) -> str:
    """How a group (a `Group`, a manifold or a string spelling) is named in messages."""
    if isinstance(group, Group):
        return group.name
    if isinstance(group, str):
        return group
    return type(group).__name__


def check_group(group, call: str) -> None:
    """Refuse, at trace time, anything that is not a group this package can measure."""
    if isinstance(group, str):
        if group not in GROUPS:
            raise ValueError(
                f"`{call}` needs a group: a `structjax.equivariant.Group` with an invariant form "
                f"(`SO(n)`, `O(n)`, `SE(n)`, `E(n)`, `LorentzGroup()`, `Sp(n)`), a "
                f"`structjax.manifolds` matrix manifold (`SpecialOrthogonal(n)`, `Stiefel(n, p)`, "
                f"...), or one of the spellings {GROUPS}; got {group!r}."
            )
    elif isinstance(group, Group):
        if group.form is None:
            raise ValueError(
                f"`{call}` needs a Lie group with an invariant form, got the group "
                f"{group.name}, which declares none (a finite group has no distance to it)."
            )
    elif not isinstance(group, AbstractManifold):
        raise TypeError(
            f"`{call}` needs a group (a `structjax.equivariant.Group`, a `structjax.manifolds` "
            f"manifold or one of {GROUPS}), got {type(group).__name__}."
        )


# `group` is a `Group`, an `AbstractManifold` or a `str` (see `GROUPS`). It is annotated `Any`
# on purpose: `check_group` refuses anything else with a `TypeError` naming every kind a group may
# be, which a runtime type checker (beartype, in the tests) would pre-empt with a bare mismatch.
def lie_group_error(group: Any, y: Float[Array, "... n p"]) -> Float[Array, "..."]:
    """The distance of `y` (leading axes batch) from `group`, one number per matrix.

    Structure first, as `constraint_error(manifold, x)`; the norms are Frobenius.

    **Arguments:**

    - `group`: one vocabulary shared with the equivariant layers and the manifolds:
        - a `structjax.equivariant.Group` that declares its invariant form: `SO(n)`, `O(n)`
          ($\\|Y^\\top Y - I\\|_F$, plus $|\\det Y - 1|$ for SO), `LorentzGroup()`
          ($\\|Y^\\top\\eta Y - \\eta\\|_F$), `Sp(n)`, `E(n)` and `SE(n)` (homogeneous matrices:
          the error of the rotation block plus the distance of the last row from
          $(0, \\dots, 0, 1)$); see `Group.membership_error`;
        - a `structjax.manifolds` manifold (`SpecialOrthogonal(n)`, `Orthogonal(n)`,
          `Stiefel(n, p)`, ...): its `constraint_error`;
        - the string spellings `"SO"`, `"O"`, `"SE"`, `"Stiefel"` (the size read from `y`;
          `"O"` and `"Stiefel"` are $\\|Y^\\top Y - I\\|_F$, tall matrices allowed).
    - `y`: a matrix, or a batch of them.

    **Returns:** the error of each matrix, shape `y.shape[:-2]`.

    **Raises:** `ValueError` for an unknown spelling, a group without an invariant form (a
    finite group), or a `y` that is not a matrix of the group's size; `TypeError` for
    anything else as `group`.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> from structjax.check import lie_group_error
    >>> from structjax.equivariant import SO, SE
    >>> from structjax.manifolds import SpecialOrthogonal
    >>> r = jnp.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    >>> float(lie_group_error(SO(3), r)), float(lie_group_error(SpecialOrthogonal(3), r))
    (0.0, 0.0)
    >>> float(lie_group_error("SO", r)) == float(lie_group_error(SO(3), r))  # the old spelling
    True
    >>> float(lie_group_error(SO(3), -r))  # det = -1: in O(3), not in SO(3)
    2.0
    >>> motion = jnp.eye(4).at[:3, :3].set(r).at[:3, 3].set(jnp.array([1.0, 2.0, 3.0]))
    >>> float(lie_group_error(SE(3), motion))
    0.0

    ```
    """
    check_group(group, "lie_group_error(group, y)")
    y = jnp.asarray(y)
    if y.ndim < 2:
        raise ValueError(f"`y` must be a matrix (batch of matrices), got shape {y.shape}.")
    if isinstance(group, Group):
        return group.membership_error(y)
    if isinstance(group, AbstractManifold):
        group.check_shape(y)
        return group.constraint_error(y)
    p = y.shape[-1]
    if group in ("SO", "SE") and y.shape[-2] != p:
        raise ValueError(f"{group}(n) elements are square, got shape {y.shape}.")
    if group in ("O", "Stiefel"):  # orthonormal columns, square or tall
        return jnp.linalg.norm(mm(mT(y), y) - jnp.eye(p, dtype=y.dtype), axis=(-2, -1))
    eye = jnp.eye(p - 1 if group == "SE" else p, dtype=y.dtype)
    return form_error(y, eye, special=True, affine=group == "SE")
