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
