"""Hamiltonian neural networks: a learned scalar energy whose symplectic gradient is the
vector field (Greydanus, Dzamba & Yosinski 2019, "Hamiltonian neural networks", eq. (2))."""

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, PyTree

from .._guards import check_param_dtype, static_int
from ..integrators import (
    FixedSolution,
    GeneralizedLeapfrog,
    HamiltonianTerm,
    VelocityVerlet,
    separable_terms,
    solve_fixed,
)
from ._bijection import check_vector


def _check_config(call: str, dim, width, depth, dtype) -> tuple[int, int, int]:
    call = f"{call}(dim={dim!r}, width={width!r}, depth={depth!r})"
    check_param_dtype(dtype, call)
    return (
        static_int(dim, call, "dim"),
        static_int(width, call, "width"),
        static_int(depth, call, "depth", minimum=0),
    )


def _scalar_mlp(in_size, width, depth, activation, dtype, key):
    return eqx.nn.MLP(in_size, "scalar", width, depth, activation, dtype=dtype, key=key)


class HamiltonianNet(eqx.Module):
    """A Hamiltonian neural network (HNN): a learned $H_\\theta(q, p)$, an MLP on $(q, p)$,
    whose vector field $J\\nabla H_\\theta$ conserves $H_\\theta$ exactly, and whose flow is
    symplectic (Greydanus, Dzamba & Yosinski 2019).

    - `hnn.hamiltonian(q, p)`: the energy; `hnn(y)` / `hnn.time_derivative(y)`: the
      vector field at `y = (q, p)`, to fit to observed derivatives;
    - `hnn.term`: a `HamiltonianTerm` for any diffrax solver;
    - `hnn.rollout(y0, dt, num_steps)`: a trajectory by `GeneralizedLeapfrog` (symplectic for
      a non-separable $H$), differentiable, to fit to observed trajectories.

    **Arguments:**

    - `dim`: the size of $q$ and of $p$ (a positive int).
    - `width`, `depth`: the hidden width and number of hidden layers of the MLP.
    - `activation`: smooth (the vector field differentiates it); default `tanh`.
    - `dtype`: the parameters' real floating dtype (default: JAX's default float).
    - `key`: a PRNG key for the MLP's initialisation.

    **Raises:** `TypeError` for non-integer sizes or a non-float `dtype`; `ValueError` for
    sizes below 1 (`depth` below 0), and at call time for `q`, `p` not of shape `(dim,)`.

    `__call__` takes ONE state `y = (q, p)`, each of shape `(dim,)`, and returns
    $(\\partial H/\\partial p, -\\partial H/\\partial q)$ of the same shapes; batch with
    `jax.vmap`. The example checks that the field conserves $H_\\theta$,
    $\\nabla H \\cdot J \\nabla H = 0$:

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.nn as snn
    >>> hnn = snn.HamiltonianNet(2, width=8, key=jax.random.key(0))
    >>> q, p = jnp.array([0.1, -0.2]), jnp.array([0.3, 0.4])
    >>> dq, dp = hnn((q, p))
    >>> gq, gp = jax.grad(hnn.hamiltonian, argnums=(0, 1))(q, p)
    >>> print(dq.shape, bool(jnp.abs(gq @ dq + gp @ dp) < 1e-14))
    (2,) True

    ```
    """

    net: eqx.nn.MLP
    dim: int = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        width: int = 64,
        depth: int = 2,
        activation: Callable[[Array], Array] = jnp.tanh,
        dtype: DTypeLike | None = None,
        *,
        key: PRNGKeyArray,
    ):
        dim, width, depth = _check_config("HamiltonianNet", dim, width, depth, dtype)
        self.net = _scalar_mlp(2 * dim, width, depth, activation, dtype, key)
        self.dim = dim

    def hamiltonian(
        self, q: Float[Array, " dim"], p: Float[Array, " dim"], args: PyTree = None
    ) -> Float[Array, ""]:
        """The learned energy $H_\\theta(q, p)$.

        **Arguments:**

        - `q`, `p`: one state, each of shape `(dim,)`.
        - `args`: unused (the diffrax `args` slot).

        **Returns:** a scalar.
        """
        check_vector(q, self.dim, "HamiltonianNet.hamiltonian(q, p)", "q")
        check_vector(p, self.dim, "HamiltonianNet.hamiltonian(q, p)", "p")
        return self.net(jnp.concatenate([q, p]))

    @property
    def term(self) -> HamiltonianTerm:
        """`HamiltonianTerm(self.hamiltonian)`, for any diffrax or structjax solver."""
        return HamiltonianTerm(self.hamiltonian)

    def time_derivative(self, y: tuple[Array, Array]) -> tuple[Array, Array]:
        """$(\\partial H/\\partial p, -\\partial H/\\partial q)$ at `y = (q, p)`."""
        return self.term.vf(0.0, y, None)

    def __call__(self, y: tuple[Array, Array]) -> tuple[Array, Array]:
        return self.time_derivative(y)

    def rollout(
        self,
        y0: tuple[PyTree[ArrayLike], PyTree[ArrayLike]],
        dt: float,
        num_steps: int,
        solver: diffrax.AbstractSolver | None = None,
        save_every: int | None = 1,
    ) -> FixedSolution:
        """`solve_fixed` of the learned system from `y0 = (q0, p0)`.

        **Arguments:**

        - `y0`: the initial state `(q0, p0)`, each of shape `(dim,)`.
        - `dt`, `num_steps`: the fixed step and the number of steps.
        - `solver`: default `GeneralizedLeapfrog()` (symplectic for a non-separable $H$).
        - `save_every`: save every this many steps (`None`: the final state only).

        **Returns:** a `FixedSolution`.
        """
        solver = GeneralizedLeapfrog() if solver is None else solver
        return solve_fixed(self.term, solver, y0, dt=dt, num_steps=num_steps, save_every=save_every)


class SeparableHamiltonianNet(eqx.Module):
    """An HNN with a separable energy $H_\\theta = T_\\theta(p) + V_\\theta(q)$, two MLPs, so
    the explicit splittings of `structjax.integrators` integrate it (symplectic, no implicit
    solve): `snn.terms` is `separable_terms(T, V)`; `snn.rollout` defaults to
    `VelocityVerlet()`.

    **Arguments:** as `HamiltonianNet` (`width`, `depth` for each of the two MLPs, `key`
    split between them).

    **Raises:** as `HamiltonianNet`.

    `__call__` takes ONE state `y = (q, p)`, each of shape `(dim,)`; batch with `jax.vmap`.
    The example measures the symplecticity of a `VelocityVerlet` rollout step:

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> snn_ = snn.SeparableHamiltonianNet(2, width=8, key=jax.random.key(0))
    >>> step = lambda q, p: snn_.rollout((q, p), 0.1, 3, save_every=None).y1
    >>> q, p = jnp.array([0.1, -0.2]), jnp.array([0.3, 0.4])
    >>> print(bool(sc.symplecticity_error(step, q, p) < 1e-12))
    True

    ```
    """

    kinetic_net: eqx.nn.MLP
    potential_net: eqx.nn.MLP
    dim: int = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        width: int = 64,
        depth: int = 2,
        activation: Callable[[Array], Array] = jnp.tanh,
        dtype: DTypeLike | None = None,
        *,
        key: PRNGKeyArray,
    ):
        dim, width, depth = _check_config("SeparableHamiltonianNet", dim, width, depth, dtype)
        kt, kv = jax.random.split(key)
        self.kinetic_net = _scalar_mlp(dim, width, depth, activation, dtype, kt)
        self.potential_net = _scalar_mlp(dim, width, depth, activation, dtype, kv)
        self.dim = dim

    def kinetic(self, p: Float[Array, " dim"], args: PyTree = None) -> Float[Array, ""]:
        """The learned kinetic energy $T_\\theta(p)$ of one `p` of shape `(dim,)` (`args`
        unused).

        **Arguments:**

        - `p`: the momentum, shape `(dim,)`.
        - `args`: unused (the diffrax `args` slot).

        **Returns:** a scalar.
        """
        check_vector(p, self.dim, "SeparableHamiltonianNet.kinetic(p)", "p")
        return self.kinetic_net(p)

    def potential(self, q: Float[Array, " dim"], args: PyTree = None) -> Float[Array, ""]:
        """The learned potential energy $V_\\theta(q)$.

        **Arguments:**

        - `q`: the position, shape `(dim,)`.
        - `args`: unused (the diffrax `args` slot).

        **Returns:** a scalar.
        """
        check_vector(q, self.dim, "SeparableHamiltonianNet.potential(q)", "q")
        return self.potential_net(q)

    def hamiltonian(
        self, q: Float[Array, " dim"], p: Float[Array, " dim"], args: PyTree = None
    ) -> Float[Array, ""]:
        """$H_\\theta(q, p) = T_\\theta(p) + V_\\theta(q)$.

        **Arguments:**

        - `q`, `p`: one state, each of shape `(dim,)`.
        - `args`: unused (the diffrax `args` slot).

        **Returns:** a scalar.
        """
        return self.kinetic(p) + self.potential(q)

    @property
    def terms(self) -> tuple[diffrax.ODETerm, diffrax.ODETerm]:
        """`separable_terms(self.kinetic, self.potential)`, for the splitting methods."""
        return separable_terms(self.kinetic, self.potential)

    def time_derivative(self, y: tuple[Array, Array]) -> tuple[Array, Array]:
        """$(\\nabla T(p), -\\nabla V(q))$ at `y = (q, p)`."""
        q, p = y
        term_q, term_p = self.terms
        return term_q.vf(0.0, p, None), term_p.vf(0.0, q, None)

    def __call__(self, y: tuple[Array, Array]) -> tuple[Array, Array]:
        return self.time_derivative(y)

    def rollout(
        self,
        y0: tuple[PyTree[ArrayLike], PyTree[ArrayLike]],
        dt: float,
        num_steps: int,
        solver: diffrax.AbstractSolver | None = None,
        save_every: int | None = 1,
    ) -> FixedSolution:
        """`solve_fixed` of the learned system from `y0 = (q0, p0)`.

        **Arguments:**

        - `y0`: the initial state `(q0, p0)`, each of shape `(dim,)`.
        - `dt`, `num_steps`: the fixed step and the number of steps.
        - `solver`: default `VelocityVerlet()` (explicit and symplectic).
        - `save_every`: save every this many steps (`None`: the final state only).

        **Returns:** a `FixedSolution`.
        """
        solver = VelocityVerlet() if solver is None else solver
        return solve_fixed(
            self.terms, solver, y0, dt=dt, num_steps=num_steps, save_every=save_every
        )
