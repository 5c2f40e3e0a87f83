"""structjax: structure-preserving building blocks for deep learning in JAX."""

from . import (
    check as check,
    equivariant as equivariant,
    integrators as integrators,
    manifolds as manifolds,
    nn as nn,
    optim as optim,
)

__version__ = "0.1.0"
