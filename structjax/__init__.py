"""structjax: structure-preserving building blocks for deep learning in JAX.

The subpackages load on first use (PEP 562), so `import structjax` costs only what it uses:
`structjax.integrators`, `.manifolds`, `.optim`, `.nn`, `.equivariant`, `.check`,
`.problems`, `.benchmark`.
"""

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_SUBPACKAGES = (
    "benchmark",
    "check",
    "equivariant",
    "integrators",
    "manifolds",
    "nn",
    "optim",
    "problems",
)

if TYPE_CHECKING:  # for type checkers and editors: the subpackages as attributes
    from . import (
        benchmark as benchmark,
        check as check,
        equivariant as equivariant,
        integrators as integrators,
        manifolds as manifolds,
        nn as nn,
        optim as optim,
        problems as problems,
    )


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBPACKAGES])
