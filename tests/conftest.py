"""Test configuration: float64, strict dtype promotion, shared helpers and fixtures."""

import os

import jax
import jax.numpy as jnp
import jax.random as jr
import pytest
from hypothesis import HealthCheck, Phase, settings

# Property tests (tests/test_properties.py): a fixed number of examples, no deadline (the
# first example of a configuration compiles), derandomised in CI so its time and outcome are
# fixed; locally each run draws afresh.
settings.register_profile(
    "structjax",
    deadline=None,
    derandomize=os.environ.get("CI", "").lower() == "true",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
    # No "explain" phase: re-running a failing example under tracing to explain it costs
    # minutes of compilation here and adds nothing the failure message does not say.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
settings.load_profile("structjax")

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def getkey():
    """A fresh PRNG key on every call, reproducible per test."""
    key = [jr.PRNGKey(0)]

    def _getkey():
        key[0], sub = jr.split(key[0])
        return sub

    return _getkey


@pytest.fixture
def x64():
    assert jnp.zeros(()).dtype == jnp.float64


@pytest.fixture(autouse=True, scope="module")
def _fresh_compilation_cache():
    """Drop JAX's compiled executables after each test module: a long-lived xdist worker
    otherwise accumulates every program of the suite (one such worker segfaulted inside XLA's
    compiler late in a full run; the same test passes alone)."""
    yield
    jax.clear_caches()
