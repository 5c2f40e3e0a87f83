"""Equinox layers whose structure holds by construction."""

from ._orthogonal import OrthogonalLinear as OrthogonalLinear
