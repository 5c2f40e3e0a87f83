"""Manifolds as pure-function geometry (equinox modules), batched over leading axes."""

from ._base import AbstractManifold as AbstractManifold
from ._euclidean import Euclidean as Euclidean
from ._sphere import Sphere as Sphere
