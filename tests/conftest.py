"""Test configuration: float64, strict dtype promotion, shared helpers and fixtures."""

import os

# The suite is compile-bound (thousands of small programs): LLVM's optimisation passes take a
# fifth of its time and buy nothing a test measures (the same operations run; fast-math
# stays off: `xla_cpu_enable_fast_math` defaults to false). Set before JAX starts its
# backend; the notebooks' kernels inherit it. A caller's own choice of the level wins.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, Phase, settings  # noqa: E402

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


# The longest tests (seconds each on 2 CPU cores, measured with `--durations=0` in a full
# run): marked `slow` and left out of the default run (`addopts` in pyproject.toml) so that
# README's test command stays under 15 minutes; `python -m pytest -n 2 -m slow` runs them.
# Each is a heavier variant of a property the default run still tests: the product manifold
# with Sphere x Lorentz x Euclidean stays, reversible gradients stay for the Verlet block,
# EMLP equivariance stays for eleven other groups, the property suite keeps six of its nine.
_SLOW = (
    # every tableau stays for Heun and Tsit5 (FSAL); ReversibleRK's gradient for Tsit5;
    # checkpointed segments for two layouts (padded last segment, saves inside segments)
    "tests/integrators/test_adjoint.py::test_solve_fixed_symplectic_equals_autodiff_every_tableau[Midpoint]",  # 4  # noqa: E501
    "tests/integrators/test_adjoint.py::test_solve_fixed_symplectic_equals_autodiff_every_tableau[Ralston]",  # 4  # noqa: E501
    "tests/integrators/test_adjoint.py::test_solve_fixed_symplectic_equals_autodiff_every_tableau[Euler]",  # 6  # noqa: E501
    "tests/integrators/test_adjoint.py::test_solve_fixed_symplectic_equals_autodiff_every_tableau[Bosh3]",  # 6  # noqa: E501
    "tests/integrators/test_adjoint.py::test_solve_fixed_symplectic_equals_autodiff_every_tableau[Dopri5]",  # 7  # noqa: E501
    "tests/integrators/test_adjoint.py::test_solve_fixed_symplectic_equals_autodiff_every_tableau[Dopri8]",  # 9  # noqa: E501
    "tests/integrators/test_adjoint.py::test_symplectic_adjoint_in_diffeqsolve_adaptive_with_dense_output[Dopri5]",  # 7  # noqa: E501
    "tests/integrators/test_adjoint.py::test_reversible_rk_inverts_and_its_gradient_equals_autodiff[Dopri5]",  # 4  # noqa: E501
    "tests/integrators/test_adjoint.py::test_reversible_rk_inverts_and_its_gradient_equals_autodiff[Heun]",  # 6  # noqa: E501
    "tests/integrators/test_adjoint.py::test_reversible_rk_inverts_and_its_gradient_equals_autodiff[Euler]",  # 5  # noqa: E501
    "tests/integrators/test_adjoint.py::test_symplectic_checkpointed_segments_equal_autodiff[12-3-12]",  # 4  # noqa: E501
    "tests/integrators/test_adjoint.py::test_symplectic_checkpointed_segments_equal_autodiff[40-1-7]",  # 3  # noqa: E501
    "tests/integrators/test_adjoint.py::test_symplectic_checkpointed_segments_equal_autodiff[40-10-None]",  # 5  # noqa: E501
    "tests/integrators/test_adjoint.py::test_symplectic_checkpointed_segments_equal_autodiff[9-None-1]",  # 5  # noqa: E501
    # the adaptive partner step stays for Tsit5 and Dopri5 in the default run
    "tests/integrators/test_adjoint.py::test_symplectic_adjoint_in_diffeqsolve_adaptive_with_dense_output[Heun]",  # 9  # noqa: E501
    "tests/integrators/test_adjoint.py::test_symplectic_adjoint_in_diffeqsolve_adaptive_with_dense_output[Bosh3]",  # 9  # noqa: E501
    "tests/integrators/test_adjoint.py::test_symplectic_adjoint_in_diffeqsolve_adaptive_with_dense_output[Dopri8]",  # 12  # noqa: E501
    "tests/test_properties.py::test_optimiser_refuses_or_stays_on_stiefel",  # 27
    "tests/test_properties.py::test_retract_is_on_manifold_or_refused",  # 22
    "tests/test_properties.py::test_check_point_refuses_exactly_off_manifold",  # 11
    "tests/nn/test_layers.py::test_reversible_gradient_equals_autodiff[revnet]",  # 19
    "tests/nn/test_layers.py::test_reversible_gradient_equals_autodiff[affine]",  # 15
    "tests/nn/test_layers.py::test_reversible_memory_is_flat_in_depth",  # 16
    "tests/nn/test_layers.py::test_orthogonal_conv_is_an_isometry",  # 14
    "tests/nn/test_layers.py::test_reversible_gradient_for_an_ensemble_under_nested_vmap",  # 12
    "tests/nn/test_layers.py::test_a_structjax_flow_inside_a_flowjax_distribution",  # 10
    "tests/nn/test_conformance.py::test_jit_vmap_grad_no_retrace[Reversible(affine, stored)]",
    "tests/nn/test_conformance.py::test_inverse_is_exact[Reversible(affine, stored)]",  # 10
    "tests/nn/test_conformance.py::test_declared_lipschitz_bound_holds[OrthogonalConv2d]",  # 10
    "tests/optim/test_guards.py::test_16_bit_riemannian_adam_on_every_manifold",  # 15
    "tests/manifolds/test_product.py::test_conformance[Sphere x Poincare x SPD-",  # 6-15 each
    "tests/manifolds/test_product.py::test_tuple_points",  # 9
    "tests/manifolds/test_stiefel.py::test_exp_is_the_geodesic",  # 11
    "tests/equivariant/test_emlp.py::test_emlp_is_equivariant[O(1,3)]",  # 12 (Lorentz)
    "tests/equivariant/test_emlp.py::test_emlp_is_equivariant[O(5)]",  # 12
    "tests/benchmark/test_work_precision.py::test_ensemble_is_the_worst_member",  # 10
    "tests/benchmark/test_work_precision.py::test_convergence_of_the_other_families[GL6]",  # 3
    "tests/benchmark/test_work_precision.py::test_convergence_of_the_other_families[gen-",  # 3
    "tests/benchmark/test_work_precision.py::test_convergence_of_the_other_families[RKMK4-t",
    "tests/problems/test_problems.py::test_float32[fpu]",  # 3
    "tests/problems/test_problems.py::test_float32[free_rigid_body]",  # 4
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith(_SLOW):
            item.add_marker(pytest.mark.slow)
