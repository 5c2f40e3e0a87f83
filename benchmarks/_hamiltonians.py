"""The separable Hamiltonian systems $H(q, p) = T(p) + V(q)$ of the integrators suite.

Every system has $T = \\sum_i |p_i|^2 / (2 m_i)$, so every splitting method runs on it,
Runge–Kutta–Nyström ones included.
"""

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import structjax.integrators as si


@dataclasses.dataclass(frozen=True)
class Problem:
    """A benchmark problem: the system, its initial state, and how long to integrate it.

    The trajectory is sampled at `t_final * k / samples`, k = 0..samples, for every method;
    a fixed-step method takes `s` steps per sample, so its step is `t_final / (samples * s)`.
    `work` lists force evaluations per sample interval: a method with `f` force evaluations
    per step runs with `s = max(1, round(w / f))` for each `w`, so that all methods span the
    same range of cost.
    """

    name: str
    title: str
    kinetic: Callable  # T(p, args)
    potential: Callable  # V(q, args)
    velocity: Callable  # dT/dp written out, for the hand-written loop
    y0: tuple
    t_final: float
    samples: int
    work: tuple[int, ...]
    source: str
    exact: Callable | None = None  # t -> (q, p), where known in closed form
    reference_dt: float | None = None  # without `exact`: step of a KahanLi8 reference run

    @property
    def terms(self):
        return si.separable_terms(self.kinetic, self.potential)

    def hamiltonian(self, q, p):
        return self.kinetic(p, None) + self.potential(q, None)

    def force(self, q):
        return jax.tree_util.tree_map(jnp.negative, jax.grad(self.potential)(q, None))


def _unit_kinetic(p, args):
    return 0.5 * jnp.sum(p**2)


def _unit_velocity(p):
    return p


# --- Kepler ----------------------------------------------------------------------------


def _kepler_potential(q, args):
    return -1.0 / jnp.sqrt(jnp.sum(q**2))


def _kepler_exact(e: float):
    """The exact orbit from Kepler's equation $E - e\\sin E = t$ ($a = \\mu = 1$, start at
    pericentre; HLW GNI I.2)."""

    def exact(t):
        mean = math.fmod(t, 2 * math.pi)
        ecc = mean
        for _ in range(50):  # Newton on Kepler's equation
            ecc -= (ecc - e * math.sin(ecc) - mean) / (1 - e * math.cos(ecc))
        r = 1 - e * math.cos(ecc)
        s = math.sqrt(1 - e * e)
        q = np.array([math.cos(ecc) - e, s * math.sin(ecc)])
        p = np.array([-math.sin(ecc) / r, s * math.cos(ecc) / r])
        return q, p

    return exact


def kepler(quick: bool) -> Problem:
    """Kepler's problem with eccentricity 0.6, the example of HLW GNI I.2: period $2\\pi$."""
    e = 0.6
    orbits = 20 if quick else 1000
    return Problem(
        name="kepler",
        title=f"Kepler e=0.6, {orbits} orbits",
        kinetic=_unit_kinetic,
        potential=_kepler_potential,
        velocity=_unit_velocity,
        y0=(jnp.array([1 - e, 0.0]), jnp.array([0.0, math.sqrt((1 + e) / (1 - e))])),
        t_final=orbits * 2 * math.pi,
        # A prime number of samples: successive orbits are sampled at different phases, so
        # the maximum energy error sees the pericentre passages.
        samples=157 if quick else 7919,
        work=(64, 512) if quick else (16, 32, 64, 128, 256, 512, 1024),
        source="Hairer, Lubich & Wanner, Geometric Numerical Integration (2006), I.2",
        exact=_kepler_exact(e),
    )


# --- Hénon–Heiles ----------------------------------------------------------------------


def _henon_heiles_potential(q, args):
    x, y = q[0], q[1]
    return 0.5 * (x**2 + y**2) + x**2 * y - y**3 / 3


def henon_heiles(quick: bool) -> Problem:
    """Hénon–Heiles at energy 1/8, where much of phase space is chaotic (Hénon & Heiles,
    Astron. J. 69:73 (1964); HLW GNI I.3). Start at q = (0, -0.2), p2 = 0, p1 from the
    energy: an orbit on which a 1e-12 perturbation grows about 2000-fold by t = 100, so the
    run stops there for its end state to stay comparable with the reference."""
    energy, q = 1 / 8, np.array([0.0, -0.2])
    p1 = math.sqrt(2 * (energy - float(_henon_heiles_potential(q, None))))
    return Problem(
        name="henon_heiles",
        title="Hénon–Heiles H=1/8 (chaotic)",
        kinetic=_unit_kinetic,
        potential=_henon_heiles_potential,
        velocity=_unit_velocity,
        y0=(jnp.asarray(q), jnp.array([p1, 0.0])),
        t_final=20.0 if quick else 100.0,
        samples=200 if quick else 1000,
        work=(4, 32) if quick else (2, 4, 8, 16, 32, 64, 128, 256),
        source="Hénon & Heiles 1964; HLW GNI I.3",
        reference_dt=0.005,
    )


# --- pendulum --------------------------------------------------------------------------


def _pendulum_potential(q, args):
    return -jnp.sum(jnp.cos(q))


def pendulum(quick: bool) -> Problem:
    """The mathematical pendulum $H = p^2/2 - \\cos q$ (HLW GNI I.1), swinging to 2.5 rad
    (period about 10)."""
    return Problem(
        name="pendulum",
        title="Pendulum, amplitude 2.5 rad",
        kinetic=_unit_kinetic,
        potential=_pendulum_potential,
        velocity=_unit_velocity,
        y0=(jnp.array([2.5]), jnp.array([0.0])),
        t_final=100.0 if quick else 1000.0,
        samples=499 if quick else 4999,
        work=(4, 32) if quick else (2, 4, 8, 16, 32, 64, 128, 256),
        source="HLW GNI I.1",
        reference_dt=0.01,
    )


# --- outer solar system ----------------------------------------------------------------

# HLW GNI I.2.4, Table 2.1: masses relative to the sun (with the inner planets), distances
# in AU, time in earth days; G in AU^3 / (solar mass day^2). Sun, Jupiter, Saturn, Uranus,
# Neptune, Pluto.
_G = 2.95912208286e-4
_MASSES = np.array(
    [1.00000597682, 0.000954786104043, 0.000285583733151, 0.0000437273164546,
     0.0000517759138449, 1 / 1.3e8]
)  # fmt: skip
# Positions and velocities at 1994-09-05 (Table 2.1), as in boost odeint's
# examples/solar_system.cpp (github.com/boostorg/odeint, commit efa150fb), which also moves
# them to the barycentre before multiplying the velocities by the masses.
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
_OFF_DIAGONAL = ~np.eye(6, dtype=bool)


def _solar_kinetic(p, args):
    return 0.5 * jnp.sum(p**2 / _MASSES[:, None])


def _solar_velocity(p):
    return p / _MASSES[:, None]


def _solar_potential(q, args):
    # All ordered pairs, halved: on CPU a dense 6x6 block runs faster than gathering pairs.
    r2 = jnp.sum((q[:, None, :] - q[None, :, :]) ** 2, axis=-1)
    r = jnp.sqrt(jnp.where(_OFF_DIAGONAL, r2, 1.0))  # 1 on the diagonal keeps grad finite
    mm = _MASSES[:, None] * _MASSES[None, :]
    return -0.5 * _G * jnp.sum(jnp.where(_OFF_DIAGONAL, mm / r, 0.0))


def solar_system(quick: bool) -> Problem:
    """The outer solar system, six bodies (HLW GNI I.2.4), over 200,000 days (as in boost
    odeint's example)."""
    m = _MASSES[:, None]
    q = _POSITIONS - np.sum(m * _POSITIONS, 0) / m.sum()
    v = _VELOCITIES - np.sum(m * _VELOCITIES, 0) / m.sum()
    return Problem(
        name="solar_system",
        title="Outer solar system, 200,000 days" if not quick else "Outer solar system",
        kinetic=_solar_kinetic,
        potential=_solar_potential,
        velocity=_solar_velocity,
        y0=(jnp.asarray(q), jnp.asarray(m * v)),
        t_final=20_000.0 if quick else 200_000.0,
        samples=200 if quick else 2000,  # every 100 days
        work=(2, 16) if quick else (1, 2, 4, 8, 16, 32, 64, 128),
        source="HLW GNI I.2.4, Table 2.1; boost odeint examples/solar_system.cpp",
        reference_dt=5.0,
    )


# --- Fermi–Pasta–Ulam–Tsingou ----------------------------------------------------------

FPU_PARTICLES = 64
_FPU_BETA = 1.0


def _fpu_potential(q, args):
    d = jnp.diff(jnp.concatenate([jnp.zeros(1, q.dtype), q, jnp.zeros(1, q.dtype)]))
    return jnp.sum(0.5 * d**2 + 0.25 * _FPU_BETA * d**4)


def fpu(quick: bool) -> Problem:
    """The FPUT β chain, 64 unit masses between fixed walls, $\\beta = 1$, started in the
    lowest normal mode with amplitude 10 (Fermi, Pasta & Ulam, Los Alamos LA-1940 (1955);
    Dauxois, Physics Today 61:55 (2008)). Highest frequency about 2."""
    n = FPU_PARTICLES
    j = np.arange(1, n + 1)
    return Problem(
        name="fpu",
        title=f"FPUT β chain, {n} particles",
        kinetic=_unit_kinetic,
        potential=_fpu_potential,
        velocity=_unit_velocity,
        y0=(jnp.asarray(10.0 * np.sin(np.pi * j / (n + 1))), jnp.zeros(n)),
        t_final=200.0 if quick else 2000.0,
        samples=200 if quick else 2000,
        work=(4, 32) if quick else (2, 4, 8, 16, 32, 64, 128, 256),
        source="Fermi, Pasta & Ulam 1955 (β model)",
        reference_dt=0.02,
    )


def problems(quick: bool) -> list[Problem]:
    return [kepler(quick), henon_heiles(quick), pendulum(quick), solar_system(quick), fpu(quick)]
