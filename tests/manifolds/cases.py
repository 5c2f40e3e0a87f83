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
    "SPD-affine": Case(
        lambda: sm.SymmetricPositiveDefinite(3), isometric_transport=True, has_exp=True
    ),
    "SPD-log_euclidean": Case(
        lambda: sm.SymmetricPositiveDefinite(3, "log_euclidean"),
        isometric_transport=True,
        has_exp=True,
    ),
    "SPD-bures_wasserstein": Case(
        lambda: sm.SymmetricPositiveDefinite(3, "bures_wasserstein"), has_exp=True
    ),
    "PoincareBall": Case(lambda: sm.PoincareBall(5), isometric_transport=True, has_exp=True),
    "Lorentz": Case(
        lambda: sm.Lorentz(4), retraction_order=2, isometric_transport=True, has_exp=True
    ),
    "Stiefel-qr": Case(lambda: sm.Stiefel(5, 3)),
    "Stiefel-polar": Case(lambda: sm.Stiefel(5, 3, "polar"), retraction_order=2),
    "Stiefel-cholesky_qr": Case(lambda: sm.Stiefel(5, 3, "cholesky_qr")),
    "Stiefel-cayley": Case(lambda: sm.Stiefel(5, 3, "cayley")),
    "Stiefel-cayley_iterative": Case(lambda: sm.Stiefel(5, 3, "cayley_iterative")),
    "Orthogonal": Case(
        lambda: sm.Orthogonal(4), retraction_order=2, isometric_transport=True, has_exp=True
    ),
    "SpecialOrthogonal": Case(
        lambda: sm.SpecialOrthogonal(4),
        retraction_order=2,
        isometric_transport=True,
        has_exp=True,
    ),
    "Grassmann": Case(lambda: sm.Grassmann(5, 2), retraction_order=2, has_exp=True),
}
