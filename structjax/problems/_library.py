"""The standard test problems of geometric integration, as `Problem`s."""

import math

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import DTypeLike

from ..integrators import HamiltonianTerm, separable_terms
from ._base import Problem


def _dtype(dtype: DTypeLike | None):
    return jnp.zeros((), dtype if dtype is not None else float).dtype


def _check_positive(call: str, name: str, value: float) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"`{call}({name}=...)` needs a finite {name} > 0, got {value}.")
    return value


def _check_count(call: str, name: str, value: int, least: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"`{call}({name}=...)` needs an int >= {least}, got {value!r}.")
    return value


def _energy(hamiltonian, args=None):
    return lambda t, y: hamiltonian(y[0], y[1], args)


def _separable(name, kinetic, potential, y0, t1, *, invariants=None, **kw) -> Problem:
    """A separable $H = T(p) + V(q)$: partitioned terms, the canonical term, the energy."""

    def hamiltonian(q, p, args):
        return kinetic(p, args) + potential(q, args)

    return Problem(
        name=name,
        y0=y0,
        t1=t1,
        ode_term=HamiltonianTerm(hamiltonian),
        terms=separable_terms(kinetic, potential),
        invariants={"energy": _energy(hamiltonian), **(invariants or {})},
        hamiltonian=hamiltonian,
        **kw,
    )


def _half_square(p, args):
    return 0.5 * jnp.sum(p**2)


def _angular_momentum_2d(t, y):
    q, p = y
    return jnp.sum(q[..., 0] * p[..., 1] - q[..., 1] * p[..., 0])


def _angular_momentum_3d(t, y):
    q, p = y
    return jnp.sum(jnp.cross(q, p), axis=0)


# --- harmonic oscillator, pendulum -------------------------------------------------------


def harmonic_oscillator(
    *, frequency: float = 1.0, t1: float = 20.0 * math.pi, dtype: DTypeLike | None = None
) -> Problem:
    r"""The harmonic oscillator $H = p^2/2 + \omega^2 q^2/2$ from $(q, p) = (1, 0)$, with its
    closed form $q = \cos\omega t$, $p = -\omega\sin\omega t$ (HLW GNI I.1).

    **Arguments:**

    - `frequency`: $\omega > 0$.
    - `t1`: the end time (default ten periods for $\omega = 1$).
    - `dtype`: the state's floating dtype (default: JAX's default float).

    **Returns:** a `Problem` with partitioned terms, the energy invariant and the exact solution.

    **Raises:** `ValueError` for a non-positive frequency or end time.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.problems as sp
    >>> pb = sp.harmonic_oscillator()
    >>> q, p = pb.reference(pb.sample_times(10))
    >>> print(bool(jnp.abs(q[-1] - 1.0) < 1e-12))  # back after ten periods
    True

    ```
    """
    w = _check_positive("harmonic_oscillator", "frequency", frequency)
    dt = _dtype(dtype)
    t1 = _check_positive("harmonic_oscillator", "t1", t1)

    def exact(t):
        return jnp.cos(w * t)[None], (-w * jnp.sin(w * t))[None]

    return _separable(
        "harmonic_oscillator",
        _half_square,
        lambda q, args: 0.5 * w**2 * jnp.sum(q**2),
        (jnp.ones(1, dt), jnp.zeros(1, dt)),
        t1,
        exact=exact,
        title=f"Harmonic oscillator, omega = {w:g}",
        source="Hairer, Lubich & Wanner, Geometric Numerical Integration (2006), I.1",
    )


def pendulum(
    *, amplitude: float = 2.5, t1: float = 100.0, dtype: DTypeLike | None = None
) -> Problem:
    r"""The mathematical pendulum $H = p^2/2 - \cos q$ released at rest from `amplitude`
    radians (HLW GNI I.1). Reference: a high-accuracy solve.

    **Arguments:**

    - `amplitude`: the starting angle, in $(0, \pi)$.
    - `t1`: the end time (period about 10 at the default amplitude).
    - `dtype`: the state's floating dtype.

    **Returns:** a `Problem` with partitioned terms and the energy invariant.

    **Raises:** `ValueError` for an amplitude outside $(0, \pi)$ or a non-positive end time.

    **Example:**

    ```pycon
    >>> import structjax.problems as sp
    >>> pb = sp.pendulum(amplitude=1.0)
    >>> print(pb.name, sorted(pb.invariants))
    pendulum ['energy']

    ```
    """
    a = float(amplitude)
    if not 0 < a < math.pi:
        raise ValueError(f"`pendulum(amplitude=...)` needs an angle in (0, pi), got {a}.")
    dt = _dtype(dtype)
    return _separable(
        "pendulum",
        _half_square,
        lambda q, args: -jnp.sum(jnp.cos(q)),
        (jnp.full(1, a, dt), jnp.zeros(1, dt)),
        _check_positive("pendulum", "t1", t1),
        title=f"Pendulum, amplitude {a:g} rad",
        source="Hairer, Lubich & Wanner, Geometric Numerical Integration (2006), I.1",
    )


# --- Kepler ------------------------------------------------------------------------------


def kepler(
    *, eccentricity: float = 0.6, orbits: float = 10.0, dtype: DTypeLike | None = None
) -> Problem:
    r"""Kepler's problem $H = |p|^2/2 - 1/|q|$ from the pericentre of an orbit of
    eccentricity $e$ ($a = \mu = 1$, period $2\pi$), with the exact solution from Kepler's
    equation $E - e\sin E = t$ (HLW GNI I.2, eq. (2.2) initial values).

    Invariants: the energy, the angular momentum and the Runge–Lenz vector.

    **Arguments:**

    - `eccentricity`: $e \in [0, 1)$.
    - `orbits`: the number of periods to integrate.
    - `dtype`: the state's floating dtype.

    **Returns:** a `Problem` with partitioned terms, three invariants and the exact solution.

    **Raises:** `ValueError` for $e$ outside $[0, 1)$ or a non-positive number of orbits.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.problems as sp
    >>> pb = sp.kepler(eccentricity=0.9, orbits=1.0)
    >>> ys = pb.reference(pb.sample_times(8))
    >>> h = jnp.asarray([pb.invariants["energy"](0.0, (q, p)) for q, p in zip(*ys)])
    >>> print(bool(jnp.max(jnp.abs(h + 0.5)) < 1e-12))  # H = -1/(2a)
    True

    ```
    """
    e = float(eccentricity)
    if not 0 <= e < 1:
        raise ValueError(f"`kepler(eccentricity=...)` needs 0 <= e < 1, got {e}.")
    orbits = _check_positive("kepler", "orbits", orbits)
    dt = _dtype(dtype)
    s = math.sqrt(1 - e * e)

    def exact(t):
        mean = jnp.mod(t, 2 * jnp.pi)
        ecc = mean + e * jnp.sin(mean)
        for _ in range(30):  # Newton on Kepler's equation: quadratic, converged in < 10
            ecc = ecc - (ecc - e * jnp.sin(ecc) - mean) / (1 - e * jnp.cos(ecc))
        r = 1 - e * jnp.cos(ecc)
        q = jnp.stack([jnp.cos(ecc) - e, s * jnp.sin(ecc)])
        p = jnp.stack([-jnp.sin(ecc) / r, s * jnp.cos(ecc) / r])
        return q, p

    def runge_lenz(t, y):
        q, p = y
        lz = q[0] * p[1] - q[1] * p[0]
        r = jnp.sqrt(jnp.sum(q**2))
        return jnp.stack([p[1] * lz - q[0] / r, -p[0] * lz - q[1] / r])

    return _separable(
        "kepler",
        _half_square,
        lambda q, args: -1.0 / jnp.sqrt(jnp.sum(q**2)),
        (jnp.asarray([1 - e, 0.0], dt), jnp.asarray([0.0, math.sqrt((1 + e) / (1 - e))], dt)),
        orbits * 2 * math.pi,
        invariants={"angular_momentum": _angular_momentum_2d, "runge_lenz": runge_lenz},
        exact=exact,
        title=f"Kepler, e = {e:g}, {orbits:g} orbits",
        source="Hairer, Lubich & Wanner, Geometric Numerical Integration (2006), I.2",
    )


# --- Hénon–Heiles -------------------------------------------------------------------------


def _henon_heiles_potential(q, args):
    x, y = q[0], q[1]
    return 0.5 * (x**2 + y**2) + x**2 * y - y**3 / 3


def henon_heiles(
    *, energy: float = 1 / 8, t1: float = 100.0, dtype: DTypeLike | None = None
) -> Problem:
    r"""Hénon–Heiles, $H = |p|^2/2 + (x^2 + y^2)/2 + x^2y - y^3/3$ (Hénon & Heiles,
    Astron. J. 69:73 (1964); HLW GNI I.3), from $q = (0, -0.2)$, $p_2 = 0$, $p_1$ from the
    energy. At $H = 1/8$ much of phase space is chaotic.

    **Arguments:**

    - `energy`: the energy level, in $(0.02, 1/6)$ (below the escape energy 1/6, above the
        potential at the start).
    - `t1`: the end time.
    - `dtype`: the state's floating dtype.

    **Returns:** a `Problem` with partitioned terms and the energy invariant.

    **Raises:** `ValueError` for an energy outside the range or a non-positive end time.

    **Example:**

    ```pycon
    >>> import structjax.problems as sp
    >>> pb = sp.henon_heiles()
    >>> print(round(float(pb.invariants["energy"](0.0, pb.y0)), 12))
    0.125

    ```
    """
    q = np.array([0.0, -0.2])
    v0 = float(_henon_heiles_potential(q, None))
    energy = float(energy)
    if not v0 < energy < 1 / 6:
        raise ValueError(
            f"`henon_heiles(energy=...)` needs {v0:.4g} < energy < 1/6 (bounded motion from "
            f"q = (0, -0.2)), got {energy}."
        )
    dt = _dtype(dtype)
    p1 = math.sqrt(2 * (energy - v0))
    return _separable(
        "henon_heiles",
        _half_square,
        _henon_heiles_potential,
        (jnp.asarray(q, dt), jnp.asarray([p1, 0.0], dt)),
        _check_positive("henon_heiles", "t1", t1),
        title=f"Hénon–Heiles, H = {energy:.4g}",
        source="Hénon & Heiles 1964; Hairer, Lubich & Wanner, GNI (2006), I.3",
    )


# --- outer solar system --------------------------------------------------------------------

# HLW GNI I.2.4, Table 2.1: masses relative to the sun (with the inner planets), distances in
# AU, time in earth days; G in AU^3 / (solar mass day^2). Sun, Jupiter, Saturn, Uranus,
# Neptune, Pluto. Positions and velocities at 1994-09-05, as in boost odeint's
# examples/solar_system.cpp (github.com/boostorg/odeint, commit efa150fb).
_G = 2.95912208286e-4
_MASSES = np.array(
    [1.00000597682, 0.000954786104043, 0.000285583733151, 0.0000437273164546,
     0.0000517759138449, 1 / 1.3e8]
)  # fmt: skip
_POSITIONS = np.array(
    [[0.0, 0.0, 0.0],
     [-3.5023653, -3.8169847, -1.5507963],
     [9.0755314, -3.0458353, -1.6483708],
     [8.3101420, -16.2901086, -7.2521278],
     [11.4707666, -25.7294829, -10.8169456],
     [-15.5387357, -25.2225594, -3.1902382]]
)  # fmt: skip
_VELOCITIES = np.array(
    [[0.0, 0.0, 0.0],
     [0.00565429, -0.00412490, -0.00190589],
     [0.00168318, 0.00483525, 0.00192462],
     [0.00354178, 0.00137102, 0.00055029],
     [0.00288930, 0.00114527, 0.00039677],
     [0.00276725, -0.00170702, -0.00136504]]
)  # fmt: skip


def _pair_potential(q, pair):
    """$\\sum_{i<j} \\phi_{ij}(|q_i - q_j|)$ over all pairs (`pair` maps the matrix of
    distances elementwise), as a dense block (fast on CPU for a
    few bodies); the diagonal is masked so that the gradient stays finite."""
    n = q.shape[0]
    off = ~jnp.eye(n, dtype=bool)
    r2 = jnp.sum((q[:, None, :] - q[None, :, :]) ** 2, axis=-1)
    r = jnp.sqrt(jnp.where(off, r2, 1.0))
    return 0.5 * jnp.sum(jnp.where(off, pair(r), 0.0))


def outer_solar_system(*, t1: float = 200_000.0, dtype: DTypeLike | None = None) -> Problem:
    r"""The outer solar system: the sun (with the inner planets), Jupiter, Saturn, Uranus,
    Neptune and Pluto, $H = \sum_i |p_i|^2/2m_i - G\sum_{i<j} m_im_j/|q_i - q_j|$, with
    Hairer–Lubich–Wanner's data (GNI I.2.4, Table 2.1), moved to the barycentre. Time in
    days, distances in AU.

    Invariants: the energy, the total linear and angular momentum.

    **Arguments:**

    - `t1`: the end time in days (Jupiter's period is about 4,330 days).
    - `dtype`: the state's floating dtype.

    **Returns:** a `Problem` with partitioned terms, positions and momenta of shape `(6, 3)`.

    **Raises:** `ValueError` for a non-positive end time.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.problems as sp
    >>> pb = sp.outer_solar_system()
    >>> q, p = pb.y0
    >>> print(q.shape, bool(jnp.max(jnp.abs(jnp.sum(p, 0))) < 1e-15))  # at rest
    (6, 3) True

    ```
    """
    dt = _dtype(dtype)
    m = _MASSES[:, None]
    q = _POSITIONS - np.sum(m * _POSITIONS, 0) / m.sum()
    v = _VELOCITIES - np.sum(m * _VELOCITIES, 0) / m.sum()
    masses = jnp.asarray(_MASSES, dt)
    mm = masses[:, None] * masses[None, :]

    def kinetic(p, args):
        return 0.5 * jnp.sum(p**2 / masses[:, None])

    def potential(q, args):
        return _pair_potential(q, lambda r: -_G * mm / r)

    return _separable(
        "outer_solar_system",
        kinetic,
        potential,
        (jnp.asarray(q, dt), jnp.asarray(m * v, dt)),
        _check_positive("outer_solar_system", "t1", t1),
        invariants={
            "momentum": lambda t, y: jnp.sum(y[1], axis=0),
            "angular_momentum": lambda t, y: jnp.sum(jnp.cross(y[0], y[1]), axis=0),
        },
        title=f"Outer solar system, {t1:g} days",
        source="Hairer, Lubich & Wanner, GNI (2006), I.2.4, Table 2.1",
    )


# --- FPU chain, Lennard-Jones cluster -----------------------------------------------------


def fpu(
    *,
    particles: int = 64,
    beta: float = 1.0,
    amplitude: float = 10.0,
    t1: float = 200.0,
    dtype: DTypeLike | None = None,
) -> Problem:
    r"""The Fermi–Pasta–Ulam–Tsingou β chain: `particles` unit masses between fixed walls,
    $V = \sum_i \tfrac12 d_i^2 + \tfrac\beta4 d_i^4$ over the $n + 1$ springs'
    extensions $d_i$, started in the lowest normal mode (Fermi, Pasta & Ulam, Los Alamos
    LA-1940 (1955); Dauxois, Physics Today 61:55 (2008)).

    **Arguments:**

    - `particles`: the number of moving masses, >= 2.
    - `beta`: the quartic coupling, >= 0.
    - `amplitude`: of the initial mode.
    - `t1`: the end time (the highest frequency is about 2).
    - `dtype`: the state's floating dtype.

    **Returns:** a `Problem` with partitioned terms and the energy invariant.

    **Raises:** `ValueError` for fewer than 2 particles, a negative beta or a non-positive end
    time.

    **Example:**

    ```pycon
    >>> import structjax.problems as sp
    >>> pb = sp.fpu(particles=8)
    >>> print(pb.y0[0].shape, pb.terms is not None)
    (8,) True

    ```
    """
    n = _check_count("fpu", "particles", particles, 2)
    beta = float(beta)
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"`fpu(beta=...)` needs a finite beta >= 0, got {beta}.")
    dt = _dtype(dtype)
    j = np.arange(1, n + 1)

    def spring(d):
        return 0.5 * d**2 + 0.25 * beta * d**4

    def potential(q, args):
        # The interior springs by slices and the two wall springs (extensions q_1, -q_n)
        # apart: a chain sharded along its particles then exchanges one neighbour per device,
        # where padding q with the walls (`concatenate`) made XLA all-gather the whole state
        # (tests/scaleout measures it).
        return jnp.sum(spring(q[1:] - q[:-1])) + spring(q[0]) + spring(q[-1])

    return _separable(
        "fpu",
        _half_square,
        potential,
        (jnp.asarray(float(amplitude) * np.sin(np.pi * j / (n + 1)), dt), jnp.zeros(n, dt)),
        _check_positive("fpu", "t1", t1),
        title=f"FPUT β chain, {n} particles, β = {beta:g}",
        source="Fermi, Pasta & Ulam 1955 (β model); Dauxois 2008",
    )


def lennard_jones(
    *, atoms: int = 7, t1: float = 20.0, temperature: float = 0.05, dtype: DTypeLike | None = None
) -> Problem:
    r"""A planar Lennard-Jones cluster in reduced units ($\epsilon = \sigma = m = 1$),
    $V = \sum_{i<j} 4(r_{ij}^{-12} - r_{ij}^{-6})$ (Lennard-Jones, Proc. R. Soc. A 106:463
    (1924)): `atoms` atoms on a hexagonal patch at the pair minimum $2^{1/6}$ (seven form
    the centred hexagon of HLW GNI I.4's frozen argon crystal), with seeded random
    velocities of mean kinetic energy `temperature` per degree of freedom, shifted to zero
    total momentum and angular momentum.

    Invariants: the energy, the linear momentum and the angular momentum.

    **Arguments:**

    - `atoms`: the number of atoms, in 2..19 (the first rings of the hexagonal lattice).
    - `t1`: the end time (the vibration period is about 1).
    - `temperature`: the initial kinetic energy per degree of freedom, >= 0.
    - `dtype`: the state's floating dtype.

    **Returns:** a `Problem` with partitioned terms, positions and momenta of shape `(atoms, 2)`.

    **Raises:** `ValueError` for a count outside 2..19, a negative temperature or a
    non-positive end time.

    **Example:**

    ```pycon
    >>> import jax.numpy as jnp
    >>> import structjax.problems as sp
    >>> pb = sp.lennard_jones()
    >>> print(pb.y0[0].shape, bool(jnp.max(jnp.abs(jnp.sum(pb.y0[1], 0))) < 1e-14))
    (7, 2) True

    ```
    """
    n = _check_count("lennard_jones", "atoms", atoms, 2)
    if n > 19:
        raise ValueError(f"`lennard_jones(atoms=...)` needs 2..19 atoms, got {n}.")
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"`lennard_jones(temperature=...)` needs >= 0, got {temperature}.")
    dt = _dtype(dtype)
    a = 2 ** (1 / 6)
    sites = [(0.0, 0.0)]
    sites += [(math.cos(k * math.pi / 3), math.sin(k * math.pi / 3)) for k in range(6)]
    sites += [(2 * math.cos(k * math.pi / 3), 2 * math.sin(k * math.pi / 3)) for k in range(6)]
    sites += [(math.sqrt(3) * math.cos((k + 0.5) * math.pi / 3),
               math.sqrt(3) * math.sin((k + 0.5) * math.pi / 3)) for k in range(6)]  # fmt: skip
    q = a * np.array(sites[:n])
    q -= q.mean(0)
    v = np.random.default_rng(0).normal(size=(n, 2)) * math.sqrt(temperature)
    v -= v.mean(0)
    # Remove the rigid rotation: v -= omega x q with omega = L / I.
    ang = np.sum(q[:, 0] * v[:, 1] - q[:, 1] * v[:, 0])
    v -= (ang / np.sum(q**2)) * np.stack([-q[:, 1], q[:, 0]], -1)

    def potential(q, args):
        return _pair_potential(q, lambda r: 4.0 * (r**-12 - r**-6))

    def angular(t, y):
        q, p = y
        return jnp.sum(q[:, 0] * p[:, 1] - q[:, 1] * p[:, 0])

    return _separable(
        "lennard_jones",
        _half_square,
        potential,
        (jnp.asarray(q, dt), jnp.asarray(v, dt)),
        _check_positive("lennard_jones", "t1", t1),
        invariants={"momentum": lambda t, y: jnp.sum(y[1], axis=0), "angular_momentum": angular},
        title=f"Lennard-Jones cluster, {n} atoms",
        source="Lennard-Jones 1924; the 7-atom hexagon of HLW GNI (2006), I.4",
    )


# --- double pendulum (non-separable) --------------------------------------------------------


def _double_pendulum_h(q, p, args):
    d = q[0] - q[1]
    kinetic = (p[0] ** 2 + 2 * p[1] ** 2 - 2 * p[0] * p[1] * jnp.cos(d)) / (
        2 * (1 + jnp.sin(d) ** 2)
    )
    return kinetic - 2 * jnp.cos(q[0]) - jnp.cos(q[1])


def double_pendulum(
    *, angles: tuple[float, float] = (0.3, 0.3), t1: float = 100.0, dtype: DTypeLike | None = None
) -> Problem:
    r"""The planar double pendulum in canonical coordinates (unit masses and lengths, $g = 1$,
    angles from the downward vertical): $H = \frac{p_1^2 + 2p_2^2 - 2p_1p_2\cos\Delta}
    {2(1 + \sin^2\Delta)} - 2\cos\theta_1 - \cos\theta_2$, $\Delta = \theta_1 - \theta_2$
    (the Legendre transform of the Lagrangian, e.g. Goldstein, *Classical Mechanics*).
    Not separable: for implicit symplectic methods (`GaussLegendre`, `GeneralizedLeapfrog`)
    and diffrax's general solvers, through `ode_term` (a `HamiltonianTerm`).

    **Arguments:**

    - `angles`: the initial angles, released at rest.
    - `t1`: the end time (the slow normal mode's period is about 8.2).
    - `dtype`: the state's floating dtype.

    **Returns:** a `Problem` without partitioned terms, with the energy invariant.

    **Raises:** `ValueError` for a non-positive end time.

    **Example:**

    ```pycon
    >>> import structjax.problems as sp
    >>> pb = sp.double_pendulum()
    >>> print(pb.terms is None, type(pb.ode_term).__name__)
    True HamiltonianTerm

    ```
    """
    dt = _dtype(dtype)
    return Problem(
        name="double_pendulum",
        y0=(jnp.asarray(angles, dt), jnp.zeros(2, dt)),
        t1=_check_positive("double_pendulum", "t1", t1),
        ode_term=HamiltonianTerm(_double_pendulum_h),
        invariants={"energy": _energy(_double_pendulum_h)},
        hamiltonian=_double_pendulum_h,
        title=f"Double pendulum from {tuple(angles)}",
        source="the canonical double pendulum (Goldstein, Classical Mechanics)",
    )


# --- rigid body and heavy top on SO(3) ------------------------------------------------------


def _hat(w):
    z = jnp.zeros_like(w[0])
    return jnp.stack(
        [jnp.stack([z, -w[2], w[1]]), jnp.stack([w[2], z, -w[0]]), jnp.stack([-w[1], w[0], z])]
    )


def _embedded(algebra):
    def vf(t, y, args):
        return jax.tree_util.tree_map(lambda a, v: a @ v, algebra(t, y, args), y)

    return diffrax.ODETerm(vf)


def free_rigid_body(
    *,
    inertia: tuple[float, float, float] = (1.0, 2.0, 3.5),
    momentum: tuple[float, float, float] = (0.3, 1.0, -0.4),
    t1: float = 20.0,
    dtype: DTypeLike | None = None,
) -> Problem:
    r"""The free rigid body: the attitude $R \in SO(3)$ and the body angular momentum $m$,
    $\dot R^\top = \widehat{-\omega}R^\top$, $\dot m = \widehat{-\omega}\,m = m \times \omega$,
    $\omega = I^{-1}m$ (Euler's equations; HLW GNI IV.1.4, VII.5). The state is
    `(R.T, m)` with `m` a column `(3, 1)`; both components evolve by the same rotation,
    so `lie_term` gives a Lie-group method $\widehat{-\omega}$ for each.

    Invariants: the Casimir $|m|^2$, the energy $\tfrac12 m^\top I^{-1} m$, and the distance
    of $R$ from SO(3) ($\|R^\top R - 1\|_F$, zero along the exact flow).

    **Arguments:**

    - `inertia`: the principal moments of inertia, positive.
    - `momentum`: the initial body angular momentum.
    - `t1`: the end time.
    - `dtype`: the state's floating dtype.

    **Returns:** a `Problem` with `lie_term` and the embedded `ode_term`.

    **Raises:** `ValueError` for a non-positive moment of inertia or end time.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si, structjax.problems as sp
    >>> pb = sp.free_rigid_body()
    >>> y1 = si.solve_fixed(pb.lie_term, si.RKMK(4), pb.y0, dt=0.1, num_steps=50).y1
    >>> print(bool(pb.invariants["orthogonality"](5.0, y1) < 1e-12))
    True

    ```
    """
    inertia_ = [_check_positive("free_rigid_body", "inertia", i) for i in inertia]
    dt = _dtype(dtype)
    inv = jnp.asarray(inertia_, dt)

    def algebra(t, y, args):
        a = _hat(-y[1][:, 0] / inv)
        return a, a

    eye = jnp.eye(3, dtype=dt)
    return Problem(
        name="free_rigid_body",
        y0=(eye, jnp.asarray(momentum, dt)[:, None]),
        t1=_check_positive("free_rigid_body", "t1", t1),
        ode_term=_embedded(algebra),
        lie_term=diffrax.ODETerm(algebra),
        invariants={
            "casimir": lambda t, y: jnp.sum(y[1] ** 2),
            "energy": lambda t, y: 0.5 * jnp.sum(y[1][:, 0] ** 2 / inv),
            "orthogonality": lambda t, y: jnp.linalg.norm(y[0].T @ y[0] - eye),
        },
        title="Free rigid body on SO(3)",
        source="Euler's equations; Hairer, Lubich & Wanner, GNI (2006), IV.1.4 and VII.5",
    )


def heavy_top(
    *,
    inertia: tuple[float, float, float] = (1.0, 2.0, 3.5),
    mgl: float = 2.0,
    z0: tuple[float, ...] = (0.3, 1.0, -0.4, 0.6, 0.0, 0.8),
    t1: float = 20.0,
    dtype: DTypeLike | None = None,
) -> Problem:
    r"""The heavy top (Euler–Poisson equations) for $z = (m, \Gamma)$:
    $\dot m = m \times \omega + Mgl\,\Gamma \times \chi$, $\dot\Gamma = \Gamma \times \omega$,
    $\omega = I^{-1}m$, $\chi = e_3$ (Holm, Marsden & Ratiu; HLW GNI VII.5), written as
    $\dot z = A(z)z$ with $A = \begin{pmatrix}\widehat{-\omega} & \widehat{-Mgl\,\chi}\\
    0 & \widehat{-\omega}\end{pmatrix}$ in the Lie algebra of $SO(3) \ltimes \mathbb R^3$,
    whose action keeps the Casimirs $|\Gamma|^2$ and $m \cdot \Gamma$. State `z` of shape
    `(6, 1)`.

    Invariants: the two Casimirs and the energy $\tfrac12 m^\top I^{-1}m + Mgl\,\Gamma\cdot\chi$.

    **Arguments:**

    - `inertia`: the principal moments of inertia, positive.
    - `mgl`: the gravity torque $Mgl \ge 0$.
    - `z0`: the initial $(m, \Gamma)$, six numbers.
    - `t1`: the end time (the top is chaotic at the defaults: the Casimirs are the structure).
    - `dtype`: the state's floating dtype.

    **Returns:** a `Problem` with `lie_term` and the embedded `ode_term`.

    **Raises:** `ValueError` for a non-positive inertia or end time, a negative `mgl`, or a
    `z0` that is not six numbers.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si, structjax.problems as sp
    >>> pb = sp.heavy_top()
    >>> z1 = si.solve_fixed(pb.lie_term, si.RKMK(4), pb.y0, dt=0.1, num_steps=50).y1
    >>> c = pb.invariants["casimir_gamma"]
    >>> print(bool(abs(c(5.0, z1) - c(0.0, pb.y0)) < 1e-12))
    True

    ```
    """
    inertia_ = [_check_positive("heavy_top", "inertia", i) for i in inertia]
    if len(tuple(z0)) != 6:
        raise ValueError(f"`heavy_top(z0=...)` needs six numbers (m, Gamma), got {z0!r}.")
    mgl = float(mgl)
    if not (math.isfinite(mgl) and mgl >= 0):
        raise ValueError(f"`heavy_top(mgl=...)` needs a finite mgl >= 0, got {mgl}.")
    dt = _dtype(dtype)
    inv = jnp.asarray(inertia_, dt)
    chi = jnp.asarray([0.0, 0.0, 1.0], dt)

    def algebra(t, z, args):
        w = z[:3, 0] / inv
        top = jnp.concatenate([_hat(-w), _hat(-mgl * chi)], axis=1)
        bottom = jnp.concatenate([jnp.zeros((3, 3), dt), _hat(-w)], axis=1)
        return jnp.concatenate([top, bottom], axis=0)

    return Problem(
        name="heavy_top",
        y0=jnp.asarray(z0, dt)[:, None],
        t1=_check_positive("heavy_top", "t1", t1),
        ode_term=_embedded(algebra),
        lie_term=diffrax.ODETerm(algebra),
        invariants={
            "casimir_gamma": lambda t, z: jnp.sum(z[3:] ** 2),
            "casimir_m_gamma": lambda t, z: jnp.sum(z[:3] * z[3:]),
            "energy": lambda t, z: 0.5 * jnp.sum(z[:3, 0] ** 2 / inv) + mgl * z[5, 0],
        },
        title=f"Heavy top, Mgl = {mgl:g}",
        source="Euler–Poisson equations; Hairer, Lubich & Wanner, GNI (2006), VII.5",
    )


# --- spherical pendulum (constrained) --------------------------------------------------------


def spherical_pendulum(
    *,
    q0: tuple[float, float, float] = (1.0, 0.0, 0.0),
    p0: tuple[float, float, float] = (0.0, 0.5, 0.3),
    t1: float = 50.0,
    dtype: DTypeLike | None = None,
) -> Problem:
    r"""The spherical pendulum: a unit mass on the unit sphere $g(q) = |q|^2 - 1 = 0$ under
    gravity, $H = |p|^2/2 + q_3$ (HLW GNI VII.1, Example 1.1). `terms` and `constraint` are
    for `structjax.integrators.Rattle`; `ode_term` is the index-reduced ODE
    $\ddot q = -e_3 - \lambda q$, $\lambda = (|p|^2 - q_3)/|q|^2$ (from $\ddot g = 0$), for
    diffrax's solvers, which then drift off the sphere.

    Invariants: the energy, the angular momentum about the vertical $q_1p_2 - q_2p_1$, the
    position constraint $|q|^2 - 1$ and the velocity constraint $q \cdot p$.

    **Arguments:**

    - `q0`: the initial position, on the unit sphere.
    - `p0`: the initial momentum, tangent there ($q_0 \cdot p_0 = 0$).
    - `t1`: the end time.
    - `dtype`: the state's floating dtype.

    **Returns:** a `Problem` with partitioned terms, a constraint and four invariants.

    **Raises:** `ValueError` for an initial state off the constraint manifold (by more than
    1e-10) or a non-positive end time.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si, structjax.problems as sp
    >>> pb = sp.spherical_pendulum()
    >>> y1 = si.solve_fixed(pb.terms, si.Rattle(pb.constraint), pb.y0, dt=0.1, num_steps=20).y1
    >>> print(bool(abs(pb.invariants["position_constraint"](2.0, y1)) < 1e-12))
    True

    ```
    """
    q, p = np.asarray(q0, float), np.asarray(p0, float)
    if q.shape != (3,) or p.shape != (3,) or abs(q @ q - 1) > 1e-10 or abs(q @ p) > 1e-10:
        raise ValueError(
            "`spherical_pendulum(q0=..., p0=...)` needs |q0| = 1 and q0 . p0 = 0 (three numbers "
            f"each), got |q0|^2 - 1 = {q @ q - 1:.3g}, q0 . p0 = {q @ p:.3g}."
        )
    dt = _dtype(dtype)

    def kinetic(p, args):
        return 0.5 * jnp.sum(p**2)

    def potential(q, args):
        return q[2]

    def hamiltonian(q, p, args):
        return kinetic(p, args) + potential(q, args)

    def reduced(t, y, args):
        q, p = y
        lam = (jnp.sum(p**2) - q[2]) / jnp.sum(q**2)
        return p, -lam * q - jnp.asarray([0.0, 0.0, 1.0], q.dtype)

    return Problem(
        name="spherical_pendulum",
        y0=(jnp.asarray(q, dt), jnp.asarray(p, dt)),
        t1=_check_positive("spherical_pendulum", "t1", t1),
        ode_term=diffrax.ODETerm(reduced),
        terms=separable_terms(kinetic, potential),
        invariants={
            "energy": _energy(hamiltonian),
            "angular_momentum_z": lambda t, y: y[0][0] * y[1][1] - y[0][1] * y[1][0],
            "position_constraint": lambda t, y: jnp.sum(y[0] ** 2) - 1.0,
            "velocity_constraint": lambda t, y: jnp.sum(y[0] * y[1]),
        },
        hamiltonian=hamiltonian,
        constraint=lambda q, args: jnp.sum(q**2) - 1.0,
        title="Spherical pendulum",
        source="Hairer, Lubich & Wanner, GNI (2006), VII.1, Example 1.1",
    )


# --- damped oscillator ---------------------------------------------------------------------


def damped_oscillator(
    *, damping: float = 0.1, t1: float = 50.0, dtype: DTypeLike | None = None
) -> Problem:
    r"""The damped harmonic oscillator $\ddot q + \gamma\dot q + q = 0$ as the conformal
    Hamiltonian system $\dot q = p$, $\dot p = -q - \gamma p$ ($H = (p^2 + q^2)/2$) from
    $(1, 0)$, with its closed form $q = e^{-\gamma t/2}(\cos\Omega t + \tfrac{\gamma}{2\Omega}
    \sin\Omega t)$, $\Omega = \sqrt{1 - \gamma^2/4}$, and the conformal invariant
    $e^{\gamma t}(p^2 + \gamma qp + q^2)$, constant along the exact flow (direct
    differentiation). `terms` and `damping` are for `structjax.integrators.conformal`
    (McLachlan & Perlmutter, J. Nonlinear Sci. 11:121 (2001)).

    **Arguments:**

    - `damping`: $\gamma \in [0, 2)$ (underdamped).
    - `t1`: the end time.
    - `dtype`: the state's floating dtype.

    **Returns:** a `Problem` with partitioned terms, a damping and the exact solution.

    **Raises:** `ValueError` for a damping outside $[0, 2)$ or a non-positive end time.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si, structjax.problems as sp
    >>> pb = sp.damped_oscillator()
    >>> solver = si.conformal(si.VelocityVerlet(), pb.damping)
    >>> y1 = si.solve_fixed(pb.terms, solver, pb.y0, dt=0.01, num_steps=1000).y1
    >>> inv = pb.invariants["conformal_energy"]
    >>> print(bool(abs(inv(10.0, y1) - inv(0.0, pb.y0)) < 1e-4))
    True

    ```
    """
    g = float(damping)
    if not 0 <= g < 2:
        raise ValueError(f"`damped_oscillator(damping=...)` needs 0 <= damping < 2, got {g}.")
    dt = _dtype(dtype)
    om = math.sqrt(1 - g * g / 4)

    def exact(t):
        e = jnp.exp(-0.5 * g * t)
        c, s = jnp.cos(om * t), jnp.sin(om * t)
        q = e * (c + (g / (2 * om)) * s)
        p = -e * (s / om)  # q', using om^2 + g^2/4 = 1
        return q[None], p[None]

    return Problem(
        name="damped_oscillator",
        y0=(jnp.ones(1, dt), jnp.zeros(1, dt)),
        t1=_check_positive("damped_oscillator", "t1", t1),
        ode_term=diffrax.ODETerm(lambda t, y, args: (y[1], -y[0] - g * y[1])),
        terms=separable_terms(_half_square, _half_square),
        invariants={
            "conformal_energy": lambda t, y: (
                jnp.exp(g * t) * jnp.sum(y[1] ** 2 + g * y[0] * y[1] + y[0] ** 2)
            )
        },
        exact=exact,
        damping=g,
        title=f"Damped oscillator, gamma = {g:g}",
        source="McLachlan & Perlmutter 2001 (conformal symplectic)",
    )


def library(*, dtype: DTypeLike | None = None) -> dict[str, Problem]:
    """Every problem of the library at its default parameters, by name.

    **Arguments:**

    - `dtype`: the states' floating dtype.

    **Returns:** a dict from each problem's `name` to the `Problem`.

    **Example:**

    ```pycon
    >>> import structjax.problems as sp
    >>> print(len(sp.library()), "kepler" in sp.library())
    12 True

    ```
    """
    makers = (
        harmonic_oscillator, pendulum, kepler, henon_heiles, outer_solar_system, fpu,
        lennard_jones, double_pendulum, free_rigid_body, heavy_top, spherical_pendulum,
        damped_oscillator,
    )  # fmt: skip
    out = {}
    for make in makers:
        pb = make(dtype=dtype)
        out[pb.name] = pb
    return out
