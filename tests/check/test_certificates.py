"""The certificates measure what they claim, on maps with known answers."""

import jax.numpy as jnp
import numpy as np
import pytest

from structjax.check import (
    convergence_order,
    energy_error,
    reversibility_error,
    symplecticity_error,
)


def test_symplecticity_of_known_maps():
    def shear(q, p):  # exact symplectic shear
        return q + 0.3 * p, p - 0.2 * jnp.sin(q + 0.3 * p)

    def euler(q, p):  # explicit Euler for the pendulum: det J = 1 + h^2 cos q != 1
        return q + 0.3 * p, p - 0.3 * jnp.sin(q)

    q, p = jnp.array([0.4, 1.0]), jnp.array([0.1, -0.3])
    assert symplecticity_error(shear, q, p) < 1e-15
    assert symplecticity_error(euler, q, p) > 1e-2


def test_symplecticity_needs_equal_sizes():
    with pytest.raises(ValueError, match="same number of entries"):
        symplecticity_error(lambda q, p: (q, p), jnp.ones(2), jnp.ones(3))


def test_reversibility_of_known_maps():
    def rotation(q, p, h):
        return jnp.cos(h) * q + jnp.sin(h) * p, -jnp.sin(h) * q + jnp.cos(h) * p

    def euler(q, p, h):
        return q + h * p, p - h * q

    assert reversibility_error(rotation, jnp.array(1.0), jnp.array(0.5), 0.3) < 1e-15
    assert reversibility_error(euler, jnp.array(1.0), jnp.array(0.5), 0.3) > 1e-2


def test_energy_error_and_drift():
    t = jnp.linspace(0, 100, 1001)
    h = lambda q, p: 0.5 * (q**2 + p**2)  # noqa: E731
    bounded = (jnp.cos(t) * (1 + 1e-3 * jnp.sin(3 * t)), -jnp.sin(t))
    drifting = (jnp.cos(t) * (1 + 1e-3 * t), -jnp.sin(t) * (1 + 1e-3 * t))
    eb, ed = energy_error(h, bounded), energy_error(h, drifting)
    assert 1e-3 < eb.max_error < 2.2e-3
    assert abs(eb.drift) < 0.1 * eb.max_error
    assert ed.drift > 0.5 * ed.max_error


def test_convergence_order_recovers_a_power_law():
    slope = convergence_order(
        lambda dt: jnp.array(1.0 + 3 * dt**4), [0.1, 0.05, 0.025], jnp.array(1.0)
    )
    assert slope == pytest.approx(4.0, abs=1e-10)
    with pytest.raises(ValueError, match="at least two"):
        convergence_order(lambda dt: jnp.array(1.0), [0.1], jnp.array(1.0))
    with pytest.raises(ValueError, match="exactly zero"):
        convergence_order(lambda dt: jnp.array(1.0), [0.1, 0.2], jnp.array(1.0))
    assert np.isfinite(slope)
