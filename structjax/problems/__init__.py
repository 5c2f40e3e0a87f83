"""Standard test problems of geometric integration, as data: state, terms for structjax's and
diffrax's solvers, invariants and a reference solution."""

from ._base import Problem as Problem
from ._library import (
    damped_oscillator as damped_oscillator,
    double_pendulum as double_pendulum,
    fpu as fpu,
    free_rigid_body as free_rigid_body,
    harmonic_oscillator as harmonic_oscillator,
    heavy_top as heavy_top,
    henon_heiles as henon_heiles,
    kepler as kepler,
    lennard_jones as lennard_jones,
    library as library,
    outer_solar_system as outer_solar_system,
    pendulum as pendulum,
    spherical_pendulum as spherical_pendulum,
)
