"""Symmetric compositions of a symmetric base method (Yoshida, Suzuki, Kahan–Li)."""

import math
from collections.abc import Sequence

import equinox as eqx

from ._splitting import AbstractSplitting
from ._tableau import SplittingTableau, _is_int, _static_coeffs


def _power_sum(gammas, k):
    return sum(g**k for g in gammas)


def _check_base(base, call: str) -> None:
    if not isinstance(base, AbstractSplitting):
        raise TypeError(
            f"`{call}` needs a structjax splitting method as `base`, got {type(base).__name__}."
        )


class Composition(AbstractSplitting):
    """The composition $\\Phi_{\\gamma_m h} \\circ \\dots \\circ \\Phi_{\\gamma_1 h}$ of a
    splitting method, merged into one splitting (so FSAL and the stage scan apply).

    For a symmetric base of order $p$ and palindromic weights with $\\sum\\gamma_i = 1$, the
    composition is symmetric of order $\\ge p$, and of order $p + 2$ when also
    $\\sum\\gamma_i^{p+1} = 0$ (Hairer, Lubich & Wanner, GNI II.4 and V.3; Yoshida 1990).
    Higher orders need conditions beyond power sums: pass `order` (the necessary power-sum
    conditions $\\sum\\gamma_i^{k} = 0$, $k = p+1, p+3, \\dots$, are checked).

    **Arguments:**

    - `base`: a structjax splitting method (symmetric, for orders above its own + 1).
    - `gammas`: the weights $\\gamma_1, \\dots, \\gamma_m$, summing to 1.
    - `order`: the order of the composition; inferred when omitted.
    - `stage_loop`: as for `ExplicitSplitting`.

    **Raises:** `TypeError` for a base that is not a structjax splitting, or weights that are
    not plain real numbers (a traced weight: the table is static); `ValueError` for weights
    not summing to 1, or an `order` they cannot give.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> g = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
    >>> method = si.Composition(si.VelocityVerlet(), (g, 1.0 - 2.0 * g, g))
    >>> print(method.order(None), method.tableau.symmetric)
    4 True

    ```
    """

    tableau: SplittingTableau = eqx.field(static=True)

    def __init__(
        self,
        base: AbstractSplitting,
        gammas: Sequence[float],
        order: int | None = None,
        stage_loop: str = "auto",
    ):
        _check_base(base, "Composition(base, gammas)")
        gammas = _static_coeffs(tuple(gammas), "gammas")
        if not gammas or not math.isclose(sum(gammas), 1.0, rel_tol=0, abs_tol=1e-12):
            raise ValueError(
                f"`Composition(base, gammas)`: the weights must sum to 1, got sum {sum(gammas)!r}."
            )
        if order is not None and (not _is_int(order) or order < 1):
            raise ValueError(f"`Composition(..., order={order!r})` needs an integer order >= 1.")
        p = base.tableau.order
        symmetric = base.tableau.symmetric and all(
            math.isclose(a, b, rel_tol=0, abs_tol=1e-14) for a, b in zip(gammas, gammas[::-1])
        )
        inferred = p + 2 if symmetric and abs(_power_sum(gammas, p + 1)) < 1e-12 else p
        if not symmetric and abs(_power_sum(gammas, p + 1)) < 1e-12:
            inferred = p + 1
        if order is None:
            order = inferred
        else:
            # Necessary conditions: the leading error term of each order scales with a power
            # sum of the weights (for a symmetric composition only odd powers appear).
            powers = range(p + 1, order, 2) if symmetric else range(p + 1, order)
            bad = [k for k in powers if abs(_power_sum(gammas, k)) > 1e-10]
            if order < p or bad:
                raise ValueError(
                    f"These weights cannot give order {order} from a base of order {p}: "
                    + (
                        f"sum(gamma**{bad[0]}) = {_power_sum(gammas, bad[0]):.3e} != 0."
                        if bad
                        else f"a composition keeps at least the base order {p}."
                    )
                )
        name = type(base).__name__
        self.tableau = base.tableau.compose(
            gammas, order=order, source=f"composition of {name} with weights {gammas}"
        )
        self.stage_loop = stage_loop


def triple_jump(base: AbstractSplitting) -> Composition:
    """Yoshida's triple jump: a symmetric method of order $p$ raised to $p + 2$.

    $\\gamma_1 = \\gamma_3 = 1/(2 - 2^{1/(p+1)})$, $\\gamma_2 = 1 - 2\\gamma_1$
    (Yoshida, Phys. Lett. A 150:262 (1990), eq. 5.2; Suzuki 1990; HLW GNI II.4).

    **Arguments:**

    - `base`: a symmetric structjax splitting method of order $p$.

    **Returns:**

    A `Composition` of order $p + 2$.

    **Raises:** `TypeError` for a base that is not a structjax splitting.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> print(si.triple_jump(si.VelocityVerlet()).order(None))
    4

    ```
    """
    _check_base(base, "triple_jump(base)")
    p = base.tableau.order
    g = 1.0 / (2.0 - 2.0 ** (1.0 / (p + 1)))
    return Composition(base, (g, 1.0 - 2.0 * g, g), order=p + 2)


def suzuki_fractal(base: AbstractSplitting) -> Composition:
    """Suzuki's five-fold composition: order $p$ raised to $p + 2$ with small weights.

    $\\gamma_1 = \\gamma_2 = \\gamma_4 = \\gamma_5 = 1/(4 - 4^{1/(p+1)})$,
    $\\gamma_3 = 1 - 4\\gamma_1$ (Suzuki, Phys. Lett. A 146:319 (1990); HLW GNI II.4).

    **Arguments:**

    - `base`: a symmetric structjax splitting method of order $p$.

    **Returns:**

    A `Composition` of order $p + 2$.

    **Raises:** `TypeError` for a base that is not a structjax splitting.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> print(si.suzuki_fractal(si.VelocityVerlet()).order(None))
    4

    ```
    """
    _check_base(base, "suzuki_fractal(base)")
    p = base.tableau.order
    g = 1.0 / (4.0 - 4.0 ** (1.0 / (p + 1)))
    return Composition(base, (g, g, 1.0 - 4.0 * g, g, g), order=p + 2)
