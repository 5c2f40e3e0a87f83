"""Manifolds as pure-function geometry (equinox modules), batched over leading axes."""

from ._base import AbstractManifold as AbstractManifold
from ._constrained import Constrained as Constrained, manifolds_of as manifolds_of
from ._euclidean import Euclidean as Euclidean
from ._sphere import Sphere as Sphere
