"""Every manifold in `cases.CASES` through every conformance check."""

import jax
import pytest

from . import conformance as c
from .cases import CASES

CHECKS = [
    c.check_points_and_tangents,
    c.check_retraction_order,
    c.check_transport,
    c.check_rgrad_matches,
    c.check_transformations,
    c.check_float32,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_conformance(case, check):
    check(case, jax.random.PRNGKey(0))


@pytest.mark.parametrize(
    "case", [k for k in CASES.values() if k.has_exp], ids=[n for n, k in CASES.items() if k.has_exp]
)
def test_exp_log(case):
    c.check_exp_log(case, jax.random.PRNGKey(1))
