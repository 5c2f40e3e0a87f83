"""The conformance list: every public manifold. Adding a manifold means adding it here."""

import structjax.manifolds as sm

from .conformance import Case

CASES = {
    "Euclidean": Case(
        lambda: sm.Euclidean((3, 2)), retraction_order=2, isometric_transport=True, has_exp=True
    ),
    "Sphere": Case(
        lambda: sm.Sphere(5), retraction_order=2, isometric_transport=True, has_exp=True
    ),
}
