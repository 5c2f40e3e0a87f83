"""The named explicit splitting methods: one final class per coefficient table."""

from typing import ClassVar

from . import _coefficients as _c
from ._splitting import AbstractSplitting
from ._tableau import SplittingTableau


class SymplecticEuler(AbstractSplitting):
    """Symplectic Euler, order 1: drift with $p_n$, kick at $q_{n+1}$.

    The same map as `diffrax.SemiImplicitEuler`. Reference: Hairer, Lubich & Wanner,
    *Geometric Numerical Integration* (2006), Theorem VI.3.3.

    Order 1, 1 force evaluation per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.SymplecticEuler()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    1 1

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.SYMPLECTIC_EULER


class VelocityVerlet(AbstractSplitting):
    """Velocity Verlet (kick-drift-kick leapfrog), order 2, one force evaluation per step.

    Reference: Swope, Andersen, Berens & Wilson, J. Chem. Phys. 76:637 (1982).

    Order 2, 1 force evaluation per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.VelocityVerlet()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    2 1

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.VELOCITY_VERLET


class VerletLeapfrog(AbstractSplitting):
    """Störmer–Verlet in position form (drift-kick-drift), order 2.

    Reference: Verlet, Phys. Rev. 159:98 (1967); Hairer, Lubich & Wanner, GNI I.1.4.

    Order 2, 1 force evaluation per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.VerletLeapfrog()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    2 1

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.VERLET_LEAPFROG


class PseudoVerletLeapfrog(AbstractSplitting):
    """McLachlan & Atela's "pseudo-leapfrog", order 2 (kick-drift-kick).

    Reference: McLachlan & Atela, Nonlinearity 5:541 (1992), Table 2.

    Order 2, 1 force evaluation per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.PseudoVerletLeapfrog()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    2 1

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.PSEUDO_VERLET_LEAPFROG


class McAte2(AbstractSplitting):
    """McLachlan & Atela's optimal two-stage method, order 2.

    Reference: McLachlan & Atela, Nonlinearity 5:541 (1992), eq. 4.2.

    Order 2, 2 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.McAte2()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    2 2

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.MCATE2


class Ruth3(AbstractSplitting):
    """Ruth's three-stage method, order 3.

    Reference: Ruth, IEEE Trans. Nucl. Sci. 30:2669 (1983).

    Order 3, 3 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.Ruth3()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    3 3

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.RUTH3


class McAte3(AbstractSplitting):
    """McLachlan & Atela's optimal three-stage method, order 3.

    Reference: McLachlan & Atela, Nonlinearity 5:541 (1992), Table 2.

    Order 3, 3 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.McAte3()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    3 3

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.MCATE3


class CandyRoz4(AbstractSplitting):
    """Candy & Rozmus (= Forest & Ruth) four-stage method, order 4, three forces per step.

    Reference: Candy & Rozmus, J. Comput. Phys. 92:230 (1991).

    Order 4, 3 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.CandyRoz4()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    4 3

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.CANDY_ROZ4


class McAte4(AbstractSplitting):
    """McLachlan & Atela's four-stage Runge–Kutta–Nyström method, order 4 for $T$ quadratic.

    Needs $\\partial T/\\partial p$ linear in $p$ and raises `ValueError` otherwise (for a
    general $T$ its order is 3). Reference: McLachlan & Atela, Nonlinearity 5:541 (1992).

    Order 4, 4 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.McAte4()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    4 4

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.MCATE4


class CalvoSanz4(AbstractSplitting):
    """Calvo & Sanz-Serna's five-stage Runge–Kutta–Nyström method, order 4 for $T$ quadratic.

    Needs $\\partial T/\\partial p$ linear in $p$ and raises `ValueError` otherwise (for a
    general $T$ its order is 3). Reference: Calvo & Sanz-Serna, Int. J. Mod. Phys. C 4:385
    (1993).

    Order 4, 4 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.CalvoSanz4()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    4 4

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.CALVO_SANZ4


class McAte42(AbstractSplitting):
    """McLachlan's symmetric five-stage method, order 4, for general separable $H$.

    Reference: McLachlan, SIAM J. Sci. Comput. 16:151 (1995).

    Order 4, 5 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.McAte42()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    4 5

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.MCATE42


class McAte5(AbstractSplitting):
    """McLachlan & Atela's six-stage Runge–Kutta–Nyström method, order 5 for $T$ quadratic.

    Needs $\\partial T/\\partial p$ linear in $p$ and raises `ValueError` otherwise (for a
    general $T$ its order is 3). Reference: McLachlan & Atela, Nonlinearity 5:541 (1992).

    Order 5, 6 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.McAte5()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    5 6

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.MCATE5


class Yoshida6(AbstractSplitting):
    """Yoshida's seven-stage composition of Verlet, order 6.

    Reference: Yoshida, Phys. Lett. A 150:262 (1990), Table 1, solution A.

    Order 6, 7 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.Yoshida6()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    6 7

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.YOSHIDA6


class KahanLi6(AbstractSplitting):
    """Kahan & Li's nine-stage composition of Verlet, order 6.

    Reference: Kahan & Li, Math. Comp. 66:1089 (1997), s9odr6a.

    Order 6, 9 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.KahanLi6()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    6 9

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.KAHAN_LI6


class McAte8(AbstractSplitting):
    """McLachlan's fifteen-stage composition of Verlet, order 8.

    Reference: McLachlan, SIAM J. Sci. Comput. 16:151 (1995).

    Order 8, 15 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.McAte8()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    8 15

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.MCATE8


class KahanLi8(AbstractSplitting):
    """Kahan & Li's seventeen-stage composition of Verlet, order 8.

    Reference: Kahan & Li, Math. Comp. 66:1089 (1997), s17odr8a.

    Order 8, 17 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.KahanLi8()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    8 17

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.KAHAN_LI8


class SofSpa10(AbstractSplitting):
    """Sofroniou & Spaletta's 35-stage composition of Verlet, order 10.

    Reference: Sofroniou & Spaletta, Optim. Methods Softw. 20:597 (2005).

    Order 10, 35 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.SofSpa10()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    10 35

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.SOFSPA10


class BlanesMoan4(AbstractSplitting):
    """Blanes & Moan's optimised six-stage Runge–Kutta–Nyström splitting, order 4.

    Its error constants are optimised for $T$ quadratic ($\\ddot q = F(q)$); it keeps order
    4 for any separable $H$ (measured in the tests). Reference: Blanes & Moan, J. Comput.
    Appl. Math. 142:313 (2002), Table 3, $\\mathrm{SRKN}_6^b$.

    Order 4, 6 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.BlanesMoan4()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    4 6

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.BLANES_MOAN4


class BlanesMoan6(AbstractSplitting):
    """Blanes & Moan's optimised eleven-stage Runge–Kutta–Nyström splitting, order 6.

    Order 6 for $T$ quadratic ($\\ddot q = F(q)$); order 4 otherwise.

    Needs $\\partial T/\\partial p$ linear in $p$. Reference: Blanes & Moan, J. Comput. Appl.
    Math. 142:313 (2002), Table 3, $\\mathrm{SRKN}_{11}^b$.

    Order 6, 11 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.BlanesMoan6()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    6 11

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.BLANES_MOAN6


class BlanesMoan4General(AbstractSplitting):
    """Blanes & Moan's optimised six-stage splitting for general separable $H$, order 4.

    Reference: Blanes & Moan, J. Comput. Appl. Math. 142:313 (2002), Table 2, $S_6$.

    Order 4, 6 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.BlanesMoan4General()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    4 6

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.BLANES_MOAN4_GENERAL


class BlanesMoan6General(AbstractSplitting):
    """Blanes & Moan's optimised ten-stage splitting for general separable $H$, order 6.

    Reference: Blanes & Moan, J. Comput. Appl. Math. 142:313 (2002), Table 2, $S_{10}$.

    Order 6, 10 force evaluations per step.

    **Arguments:**

    - `stage_loop`: `"auto"` (default), `"scan"` or `"unroll"`: whether the stages run in a
      `jax.lax.scan` or unrolled in Python; `"auto"` scans long words, unrolls short ones.

    **Raises:**

    - `ValueError`: at construction, if `stage_loop` is not one of the three values.

    **Example:**

    ```pycon
    >>> import structjax.integrators as si
    >>> solver = si.BlanesMoan6General()
    >>> print(solver.order(None), solver.tableau.force_evaluations)
    6 10

    ```
    """

    tableau: ClassVar[SplittingTableau] = _c.BLANES_MOAN6_GENERAL


ALL_METHODS = (
    SymplecticEuler,
    VelocityVerlet,
    VerletLeapfrog,
    PseudoVerletLeapfrog,
    McAte2,
    Ruth3,
    McAte3,
    CandyRoz4,
    McAte4,
    CalvoSanz4,
    McAte42,
    McAte5,
    Yoshida6,
    KahanLi6,
    McAte8,
    KahanLi8,
    SofSpa10,
    BlanesMoan4,
    BlanesMoan6,
    BlanesMoan4General,
    BlanesMoan6General,
)
