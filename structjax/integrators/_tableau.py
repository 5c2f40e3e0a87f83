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
from typing import Literal, cast

import jax
import jax.core
import numpy as np

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
    - `general_order`: for an RKN table, its order for a general separable $H$ (what its
        conformal lift keeps, see `conformal`); default the floor every consistent word has,
        2 for a palindrome and 1 otherwise. Equal to `order` when `rkn` is `False`.

    **Raises:** `ValueError` for an unknown `first`, an order below 1, coefficients whose
    drifts or kicks do not sum to 1, or a `general_order` above `order`; `TypeError` for
    coefficients that are not plain numbers (traced or complex: they fix the compiled step).

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> leapfrog = si.SplittingTableau("kick", (0.5, 1.0, 0.5), order=2)
    >>> print(leapfrog.symmetric, leapfrog.force_evaluations)
    True 1

    ```
    """

    first: str  # "drift" or "kick", checked in __post_init__
    coeffs: tuple[float, ...]
    order: int
    rkn: bool = False
    source: str = ""
    general_order: int | None = None

    def __post_init__(self):
        if self.first not in ("drift", "kick"):
            raise ValueError(
                f"`SplittingTableau(first=...)` must be 'drift' or 'kick', got {self.first!r}."
            )
        object.__setattr__(self, "coeffs", _static_coeffs(self.coeffs, "coeffs"))
        if not _is_int(self.order) or self.order < 1:
            raise ValueError(
                f"`SplittingTableau(order=...)` needs an integer order >= 1, got {self.order!r}."
            )
        general = self.general_order
        if general is None:
            general = (2 if self.symmetric else 1) if self.rkn else self.order
            general = min(general, self.order)
        if not _is_int(general) or not 1 <= general <= self.order:
            raise ValueError(
                f"`general_order` must be an integer in [1, order={self.order}], got {general!r}."
            )
        if not self.rkn and general != self.order:
            raise ValueError(
                f"A table that is not RKN has one order: `general_order={general}` must equal "
                f"`order={self.order}` (or pass `rkn=True`)."
            )
        object.__setattr__(self, "general_order", int(general))
        for kind in ("drift", "kick"):
            total = sum(c for k, c in self.ops if k == kind)
            if not math.isclose(total, 1.0, rel_tol=0, abs_tol=1e-12):
                raise ValueError(
                    f"`SplittingTableau(coeffs=...)`: the {kind} coefficients of a consistent "
                    f"splitting sum to 1, got {total!r} (source: {self.source or 'unknown'})."
                )

    @property
    def ops(self) -> tuple[tuple[Kind, float], ...]:
        """The factors as `(kind, coefficient)` pairs, in the order applied."""
        kinds: list[Kind] = [cast(Kind, self.first), _OTHER[self.first]]
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
        cls,
        ops: Sequence[tuple[Kind, float]],
        *,
        order: int,
        rkn: bool = False,
        source: str = "",
        general_order: int | None = None,
    ) -> SplittingTableau:
        """Normalise any word of drifts and kicks: drop zeros, merge neighbours of one kind."""
        ops = tuple(ops)
        numbers = _static_coeffs(tuple(c for _, c in ops), "ops")
        merged: list[list] = []
        for (kind, _), coeff in zip(ops, numbers):
            if kind not in ("drift", "kick"):
                raise ValueError(f"A factor is 'drift' or 'kick', got {kind!r}.")
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
        return cls(merged[0][0], tuple(c for _, c in merged), order, rkn, source, general_order)

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
        general_order: int | None = None,
    ) -> SplittingTableau:
        """The usual stage form: $\\prod_i$ (`first_kind` with `first[i]`, then the other
        kind with `second[i]`)."""
        if len(first) != len(second):
            raise ValueError(
                f"Stage coefficients need equal lengths, got {len(first)} and {len(second)}."
            )
        other = _OTHER[first_kind]
        ops: list[tuple[Kind, float]] = []
        for x, y in zip(first, second):
            ops.append((first_kind, x))
            ops.append((other, y))
        return cls.from_ops(ops, order=order, rkn=rkn, source=source, general_order=general_order)

    def compose(self, gammas: Sequence[float], *, order: int, source: str = "") -> SplittingTableau:
        """The composition $\\Phi_{\\gamma_m h}\\circ\\dots\\circ\\Phi_{\\gamma_1 h}$ of this
        method, as one merged word (Hairer, Lubich & Wanner II.4). For an RKN base its
        `general_order` is kept as the floor of the composition's."""
        gammas = _static_coeffs(tuple(gammas), "gammas")
        ops: list[tuple[Kind, float]] = [(k, g * c) for g in gammas for k, c in self.ops]
        tab = SplittingTableau.from_ops(ops, order=order, rkn=self.rkn, source=source)
        if self.rkn:
            tab = dataclasses.replace(
                tab, general_order=min(cast(int, self.general_order), order)
            )  # set in __post_init__
        return tab

    def adjoint(self) -> SplittingTableau:
        """The adjoint method $\\Phi^*_h = \\Phi_{-h}^{-1}$: the word reversed."""
        kinds = [k for k, _ in self.ops]
        return SplittingTableau(
            kinds[-1],
            self.coeffs[::-1],
            self.order,
            self.rkn,
            f"adjoint of {self.source}",
            self.general_order,
        )


def _is_int(x) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


def _static_coeffs(values, name: str) -> tuple[float, ...]:
    """Coefficients as a tuple of Python floats, refusing (at trace time) what is not a plain
    real number: a traced value (the table is static, it fixes the compiled step), a complex
    or a non-numeric one."""
    out = []
    for c in values:
        if isinstance(c, jax.core.Tracer):
            raise TypeError(
                f"A splitting table's `{name}` must be plain numbers (they are static: they fix "
                "the compiled step), got a traced value. Build the method outside `jax.jit`, "
                "or pass Python floats."
            )
        a = np.asarray(c)
        if a.shape != () or not (np.issubdtype(a.dtype, np.floating) or _is_int(a.item())):
            raise TypeError(
                f"A splitting table's `{name}` must be real numbers, got {c!r} "
                f"(dtype {a.dtype}, shape {a.shape})."
            )
        out.append(float(a))
    return tuple(out)
