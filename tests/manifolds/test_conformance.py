"""Every manifold in `cases.CASES` through every conformance check."""

import jax
import pytest

from . import conformance as c
from .cases import CASES, XFAIL

PARAMS = [
    pytest.param(
        case,
        check,
        id=f"{name}-{check.__name__}",
        marks=[pytest.mark.xfail(strict=True)] if (name, check.__name__) in XFAIL else [],
    )
    for name, case in CASES.items()
    for check in c.CHECKS
    if c.applies(case, check)
]


@pytest.mark.parametrize("case, check", PARAMS)
def test_conformance(case, check):
    check(case, jax.random.PRNGKey(0))


def test_every_manifold_meets_the_core_checks():
    # The list above is built by `applies`: make sure no manifold silently skips the checks
    # every manifold must pass (points and tangents, retraction, transport, gradients, jit).
    core = {"check_points_and_tangents", "check_retraction_order", "check_transport",
            "check_rgrad_matches", "check_transformations"}  # fmt: skip
    for name, case in CASES.items():
        ran = {check.__name__ for check in c.CHECKS if c.applies(case, check)}
        assert core <= ran, (name, core - ran)
