"""Continuous normalising flows (FFJORD): a neural ODE with its log-density, as a bijection."""

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._guards import guard, positive_finite, static_float, static_int
from ..integrators import solve_fixed
from ._bijection import AbstractBijection, check_vector, jit_method

LogDet = Float[Array, ""]


class _Dynamics(eqx.Module):
    """The augmented field on `(z, l)`: `dz/ds = sign f(t, z)`, `dl/ds = sign tr(df/dz)`,
    with `t = s` forwards and `t = t1 - s` backwards; `args` is the Hutchinson probe or None."""

    net: eqx.nn.MLP
    t1: float = eqx.field(static=True)
    reverse: bool = eqx.field(static=True)

    def __call__(self, s, y, args):
        z, _ = y
        t = self.t1 - s if self.reverse else s

        def f(z):
            return self.net(jnp.concatenate([z, jnp.reshape(t, (1,)).astype(z.dtype)]))

        if args is None:  # the exact trace: one JVP per basis vector
            fz, lin = jax.linearize(f, z)
            tr = jnp.trace(jax.vmap(lin)(jnp.eye(z.shape[0], dtype=z.dtype)))
        else:  # Hutchinson: eps^T (df/dz) eps
            fz, jv = jax.jvp(f, (z,), (args,))
            tr = jnp.dot(args, jv)
        return (-fz, -tr) if self.reverse else (fz, tr)


class CNF(AbstractBijection):
    """A continuous normalising flow, FFJORD (Grathwohl, Chen, Bettencourt, Sutskever &
    Duvenaud 2019, ICLR): the map $x = z(0) \\mapsto z(t_1)$ of $\\dot z = f_\\theta(t, z)$,
    $f_\\theta$ an MLP on $(z, t)$, solved together with its log-determinant
    $\\ell(t_1) = \\int_0^{t_1} \\operatorname{tr}\\,\\partial f_\\theta/\\partial z\\,dt$
    (the instantaneous change of variables) by `num_steps` fixed steps of `solver`
    (`solve_fixed`). `forward` maps data to the base space, so a density is
    $\\log p(x) = \\log \\mathcal N(z(t_1)) + \\ell(t_1)$ (`log_prob`).

    The trace is exact (`trace="exact"`: `dim` Jacobian-vector products a stage), or
    Hutchinson's unbiased estimate $\\varepsilon^\\top (\\partial f/\\partial z)\\varepsilon$
    with one probe $\\varepsilon$ (Rademacher or Gaussian) drawn from the call's `key` and
    held over the solve (`trace="hutchinson"`: one JVP a stage).

    The inverse is the solve backwards in time (the negated field, time reparametrised so the
    step stays positive), so unlike a coupling layer, inversion and the log-determinant hold
    only to the solver's accuracy: `inverse(forward(x))` differs from `x` by the two solves'
    errors (measured in `tests/nn/test_cnf.py` with `Tsit5` on a 2-d flow of width 16 at
    its initialisation: 2e-10 at 4 steps, 7e-12 at 8, 2e-13 at 16; with its weights
    perturbed by N(0, 0.5^2), a stiffer field, 5e-7 at 8 steps and 2e-10 at 32).

    **Arguments:**

    - `dim`: the data dimension, an int >= 1.
    - `width`, `depth`: the hidden width and number of hidden layers of the MLP $f_\\theta$.
    - `activation`: the MLP's activation (smooth: the trace differentiates it).
    - `t1`: the end time, a finite float > 0.
    - `num_steps`: the fixed number of solver steps, an int >= 1.
    - `solver`: a diffrax solver (default `diffrax.Tsit5()`).
    - `trace`: `"exact"` or `"hutchinson"`.
    - `noise`: Hutchinson's probe, `"rademacher"` or `"gaussian"`.
    - `adjoint`: `"symplectic"` (the exact gradient of the discrete solve in memory
      O(num_steps) states; explicit Runge-Kutta solvers) or `"autodiff"`, as in
      `solve_fixed`.
    - `key`: a PRNG key for the MLP's initialisation.

    **Raises:** `TypeError`/`ValueError` for sizes, `t1` or `num_steps` of the wrong type or
    range, an unknown `trace`, `noise` or `adjoint`, or a `solver` that is not a diffrax
    solver; at call time `ValueError` for an input not of shape `(dim,)` or a Hutchinson call
    without `key`, `TypeError` for an integer or complex input, and for a non-finite input a
    `ValueError` (eagerly) or a run-time error (under `jax.jit`).

    The methods take ONE example of shape `(dim,)` and an optional `key` (needed, and used,
    with `trace="hutchinson"` only); batch with `jax.vmap`.

    **Example:**

    ```pycon
    >>> import jax, jax.numpy as jnp
    >>> import structjax.check as sc, structjax.nn as snn
    >>> flow = snn.CNF(2, width=8, num_steps=16, key=jax.random.key(0))
    >>> x = jnp.array([0.5, -0.3])
    >>> z, log_det = flow.forward_and_log_det(x)
    >>> print(z.shape, bool(sc.inversion_error(flow.forward, flow.inverse, x) < 1e-6))
    (2,) True

    ```
    """

    net: eqx.nn.MLP
    solver: diffrax.AbstractSolver
    dim: int = eqx.field(static=True)
    t1: float = eqx.field(static=True)
    num_steps: int = eqx.field(static=True)
    trace: str = eqx.field(static=True)
    noise: str = eqx.field(static=True)
    adjoint: str = eqx.field(static=True)

    def __init__(
        self,
        dim: int,
        width: int = 64,
        depth: int = 2,
        activation: Callable = jax.nn.tanh,
        *,
        t1: float = 1.0,
        num_steps: int = 8,
        solver: diffrax.AbstractSolver | None = None,
        trace: str = "exact",
        noise: str = "rademacher",
        adjoint: str = "symplectic",
        key: PRNGKeyArray,
    ):
        self.dim = static_int(dim, f"CNF(dim={dim!r})", "dim", minimum=1)
        width = static_int(width, f"CNF(width={width!r})", "width", minimum=1)
        depth = static_int(depth, f"CNF(depth={depth!r})", "depth", minimum=0)
        self.num_steps = static_int(num_steps, f"CNF(num_steps={num_steps!r})", "num_steps")
        self.t1 = static_float(t1, f"CNF(t1={t1!r})", "t1", positive_finite,
                               "a finite end time > 0")  # fmt: skip
        for name, value, allowed in (("trace", trace, ("exact", "hutchinson")),
                                     ("noise", noise, ("rademacher", "gaussian")),
                                     ("adjoint", adjoint, ("symplectic", "autodiff"))):  # fmt: skip
            if value not in allowed:
                raise ValueError(f"`CNF({name}={value!r:.60})` needs one of {allowed}.")
        solver = diffrax.Tsit5() if solver is None else solver
        if not isinstance(solver, diffrax.AbstractSolver):
            raise TypeError(f"`CNF(solver=...)` needs a diffrax solver, got "
                            f"{type(solver).__name__}.")  # fmt: skip
        self.net = eqx.nn.MLP(self.dim + 1, self.dim, width, depth, activation, key=key)
        self.solver, self.trace, self.noise, self.adjoint = solver, trace, noise, adjoint

    def _probe(self, x, key, call: str):
        if self.trace == "exact":
            return None
        if key is None:
            raise ValueError(
                f"`{call}` needs a PRNG `key` with trace='hutchinson' (it draws the probe "
                f"vector), e.g. `{call.split('.')[-1]}(x, key=jax.random.key(0))`."
            )
        if self.noise == "rademacher":
            return jax.random.rademacher(key, (self.dim,), x.dtype)
        return jax.random.normal(key, (self.dim,), x.dtype)

    def _zero_probe(self, x):
        """The map alone: with Hutchinson a zero probe (one JVP a stage, not a trace)."""
        return None if self.trace == "exact" else jnp.zeros((self.dim,), x.dtype)

    def _check(self, x, call: str, name: str):
        check_vector(x, self.dim, call, name)
        return guard(x, ~jnp.isfinite(x), f"`{call}` needs a finite `{name}`.", found=x)

    def forward_and_log_det(
        self, x: Float[Array, " dim"], key: PRNGKeyArray | None = None
    ) -> tuple[Float[Array, " dim"], LogDet]:
        """Data to base: $z(t_1)$ and $\\log|\\det \\partial z(t_1)/\\partial x|$.

        **Arguments:**

        - `x`: one example, shape `(dim,)`.
        - `key`: the Hutchinson probe's key (required with `trace="hutchinson"`).

        **Returns:** `(z, log_det)`, the log-determinant exact or estimated as `trace` says,
        to the solver's accuracy.
        """
        x = self._check(x, "CNF.forward_and_log_det", "x")
        return jit_method(_solve, self, x, self._probe(x, key, "CNF.forward_and_log_det"), False)

    def inverse_and_log_det(
        self, y: Float[Array, " dim"], key: PRNGKeyArray | None = None
    ) -> tuple[Float[Array, " dim"], LogDet]:
        """Base to data, by the solve backwards: $x$ and $\\log|\\det \\partial x/\\partial y|$.

        **Arguments:**

        - `y`: one point of the base space, shape `(dim,)`.
        - `key`: the Hutchinson probe's key (required with `trace="hutchinson"`).

        **Returns:** `(x, log_det)`, to the solver's accuracy (not an exact inverse).
        """
        y = self._check(y, "CNF.inverse_and_log_det", "y")
        return jit_method(_solve, self, y, self._probe(y, key, "CNF.inverse_and_log_det"), True)

    def forward(self, x: Float[Array, " dim"], key: PRNGKeyArray | None = None) -> Array:
        """Data to base, without the log-determinant (no probe is needed).

        **Arguments:**

        - `x`: one example, shape `(dim,)`.
        - `key`: accepted and unused (the map itself needs no trace).

        **Returns:** `z`, shape `(dim,)`.
        """
        x = self._check(x, "CNF.forward", "x")
        return jit_method(_solve, self, x, self._zero_probe(x), False)[0]

    def inverse(self, y: Float[Array, " dim"], key: PRNGKeyArray | None = None) -> Array:
        """Base to data, without the log-determinant (no probe is needed).

        **Arguments:**

        - `y`: one point of the base space, shape `(dim,)`.
        - `key`: accepted and unused.

        **Returns:** `x`, shape `(dim,)`.
        """
        y = self._check(y, "CNF.inverse", "y")
        return jit_method(_solve, self, y, self._zero_probe(y), True)[0]

    def __call__(self, x: Float[Array, " dim"], key: PRNGKeyArray | None = None) -> Array:
        return self.forward(x)

    def log_prob(self, x: Float[Array, " dim"], key: PRNGKeyArray | None = None) -> LogDet:
        """The model's log-density at `x` under a standard normal base:
        $\\log \\mathcal N(z; 0, I) + \\log|\\det \\partial z/\\partial x|$.

        **Arguments:**

        - `x`: one example, shape `(dim,)`.
        - `key`: the Hutchinson probe's key (required with `trace="hutchinson"`).

        **Returns:** the log-density, a scalar (an unbiased estimate with Hutchinson).
        """
        z, log_det = self.forward_and_log_det(x, key)
        base = -0.5 * jnp.sum(z**2) - 0.5 * self.dim * jnp.log(2 * jnp.pi).astype(z.dtype)
        return base + log_det


def _solve(cnf: CNF, x, probe, reverse: bool):
    term = diffrax.ODETerm(_Dynamics(cnf.net, cnf.t1, reverse))
    y0 = (x, jnp.zeros((), x.dtype))
    sol = solve_fixed(term, cnf.solver, y0, dt=cnf.t1 / cnf.num_steps, num_steps=cnf.num_steps,
                      args=probe, adjoint=cnf.adjoint)  # fmt: skip
    return sol.y1
