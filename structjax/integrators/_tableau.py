"""The data of an explicit splitting method: an alternating word of drifts and kicks.

For $H(q, p) = T(p) + V(q)$ a splitting method is a product of the exact flows of the two
parts, $\\Phi_h = \\dots \\circ \\varphi^{V}_{b_1 h} \\circ \\varphi^{T}_{a_1 h}\\circ\\dots$: a
*drift* $q \\mathrel{+}= a h\\, \\partial T/\\partial p$ and a *kick*
$p \\mathrel{+}= b h\\, F(q)$ with $F = -\\partial V/\\partial q$. Each factor is a symplectic
shear, so the product is symplectic for any coefficients; the coefficients decide the order
(Hairer, Lubich & Wanner, *Geometric Numerical Integration*, 2nd ed., II.5 and III.3).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

Kind = Literal["drift", "kick"]
_OTHER: dict[str, Kind] = {"drift": "kick", "kick": "drift"}


@dataclasses.dataclass(frozen=True)
class SplittingTableau:
    """A splitting method as a word of alternating drifts and kicks (hashable, static).

    **Arguments:**

    - `first`: `"drift"` or `"kick"`, the kind of the first factor applied.
    - `coeffs`: the coefficients of the factors in the order they are applied; the kinds
        alternate. They are normalised: zero factors removed, neighbours of one kind merged.
    - `order`: the classical order of the method for a general separable $H$
        (or for $T$ quadratic when `rkn` is set).
    - `rkn`: `True` for a Runge–Kutta–Nyström method, whose order holds only when
        $\\partial T/\\partial p$ is linear in $p$ (that is, $T$ quadratic).
    - `source`: the reference the coefficients come from.
    """

    first: str  # "drift" or "kick", checked in __post_init__
    coeffs: tuple[float, ...]
    order: int
    rkn: bool = False
    source: str = ""

    def __post_init__(self):
        if self.first not in ("drift", "kick"):
            raise ValueError(f"`first` must be 'drift' or 'kick', got {self.first!r}.")
        if self.order < 1:
            raise ValueError(f"A splitting method has order >= 1, got {self.order}.")
        for kind in ("drift", "kick"):
            total = sum(c for k, c in self.ops if k == kind)
            if not math.isclose(total, 1.0, rel_tol=0, abs_tol=1e-12):
                raise ValueError(
                    f"The {kind} coefficients of a consistent splitting sum to 1, "
                    f"got {total!r} (source: {self.source or 'unknown'})."
                )

    @property
    def ops(self) -> tuple[tuple[Kind, float], ...]:
        """The factors as `(kind, coefficient)` pairs, in the order applied."""
        kinds = [self.first, _OTHER[self.first]]
        return tuple((kinds[i % 2], c) for i, c in enumerate(self.coeffs))

    @property
    def symmetric(self) -> bool:
        """Whether the word is a palindrome, which makes the method time-symmetric."""
        c = self.coeffs
        # Palindromic as a word of kinds too: it must start and end with the same kind.
        return len(c) % 2 == 1 and all(
            math.isclose(x, y, rel_tol=0, abs_tol=1e-14) for x, y in zip(c, c[::-1])
        )

    @property
    def fsal(self) -> bool:
        """Whether the last force evaluation of a step is the first of the next."""
        return len(self.coeffs) > 1 and self.ops[0][0] == "kick" and self.ops[-1][0] == "kick"

    @property
    def force_evaluations(self) -> int:
        """Evaluations of $F(q)$ per step (with FSAL, after the first step)."""
        kicks = sum(1 for k, _ in self.ops if k == "kick")
        return kicks - 1 if self.fsal else kicks

    @classmethod
    def from_ops(
        cls, ops: Sequence[tuple[Kind, float]], *, order: int, rkn: bool = False, source: str = ""
    ) -> SplittingTableau:
        """Normalise any word of drifts and kicks: drop zeros, merge neighbours of one kind."""
        merged: list[list] = []
        for kind, coeff in ops:
            coeff = float(coeff)
            if coeff == 0.0:
                continue
            if merged and merged[-1][0] == kind:
                merged[-1][1] += coeff
                if merged[-1][1] == 0.0:
                    merged.pop()
            else:
                merged.append([kind, coeff])
        if not merged:
            raise ValueError("A splitting method needs at least one non-zero factor.")
        return cls(merged[0][0], tuple(c for _, c in merged), order, rkn, source)

    @classmethod
    def from_stages(
        cls,
        first: Sequence[float],
        second: Sequence[float],
        *,
        first_kind: Kind,
        order: int,
        rkn: bool = False,
        source: str = "",
    ) -> SplittingTableau:
        """The usual stage form: $\\prod_i$ (`first_kind` with `first[i]`, then the other
        kind with `second[i]`)."""
        if len(first) != len(second):
            raise ValueError(
                f"Stage coefficients need equal lengths, got {len(first)} and {len(second)}."
            )
        other = _OTHER[first_kind]
        ops = [op for x, y in zip(first, second) for op in ((first_kind, x), (other, y))]
        return cls.from_ops(ops, order=order, rkn=rkn, source=source)

    def compose(self, gammas: Sequence[float], *, order: int, source: str = "") -> SplittingTableau:
        """The composition $\\Phi_{\\gamma_m h}\\circ\\dots\\circ\\Phi_{\\gamma_1 h}$ of this
        method, as one merged word (Hairer, Lubich & Wanner II.4)."""
        ops = [(k, g * c) for g in gammas for k, c in self.ops]
        return SplittingTableau.from_ops(ops, order=order, rkn=self.rkn, source=source)

    def adjoint(self) -> SplittingTableau:
        """The adjoint method $\\Phi^*_h = \\Phi_{-h}^{-1}$: the word reversed."""
        kinds = [k for k, _ in self.ops]
        return SplittingTableau(
            kinds[-1], self.coeffs[::-1], self.order, self.rkn, f"adjoint of {self.source}"
        )
