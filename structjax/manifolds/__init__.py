"""Manifolds as pure-function geometry (equinox modules), batched over leading axes."""

from ._base import AbstractManifold as AbstractManifold
from ._constrained import Constrained as Constrained, manifolds_of as manifolds_of
from ._euclidean import Euclidean as Euclidean
from ._grassmann import Grassmann as Grassmann
from ._lorentz import Lorentz as Lorentz
from ._orthogonal import Orthogonal as Orthogonal, SpecialOrthogonal as SpecialOrthogonal
from ._poincare import PoincareBall as PoincareBall
from ._product import Product as Product
from ._spd import SymmetricPositiveDefinite as SymmetricPositiveDefinite
from ._sphere import Sphere as Sphere
from ._stiefel import Stiefel as Stiefel
