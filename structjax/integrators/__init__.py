"""Structure-preserving integrators, as diffrax solvers."""

from ._adjoint import SymplecticAdjoint as SymplecticAdjoint
from ._base import AbstractStructuredSolver as AbstractStructuredSolver
from ._composition import (
    Composition as Composition,
    suzuki_fractal as suzuki_fractal,
    triple_jump as triple_jump,
)
from ._discrete_gradient import (
    AVF as AVF,
    AbstractDiscreteGradient as AbstractDiscreteGradient,
    Gonzalez as Gonzalez,
    ItohAbe as ItohAbe,
    PoissonTerm as PoissonTerm,
)
from ._implicit import (
    GaussLegendre as GaussLegendre,
    GeneralizedLeapfrog as GeneralizedLeapfrog,
    HamiltonianTerm as HamiltonianTerm,
    ImplicitMidpoint as ImplicitMidpoint,
    ImplicitRungeKutta as ImplicitRungeKutta,
    ImplicitTableau as ImplicitTableau,
    gauss_legendre_tableau as gauss_legendre_tableau,
)
from ._lie import (
    RKMK as RKMK,
    CrouchGrossman as CrouchGrossman,
    CrouchGrossman3 as CrouchGrossman3,
    LieGroupRK as LieGroupRK,
    LieTableau as LieTableau,
    cayley_map as cayley_map,
    rodrigues as rodrigues,
)
from ._methods import (
    BlanesMoan4 as BlanesMoan4,
    BlanesMoan4General as BlanesMoan4General,
    BlanesMoan6 as BlanesMoan6,
    BlanesMoan6General as BlanesMoan6General,
    CalvoSanz4 as CalvoSanz4,
    CandyRoz4 as CandyRoz4,
    KahanLi6 as KahanLi6,
    KahanLi8 as KahanLi8,
    McAte2 as McAte2,
    McAte3 as McAte3,
    McAte4 as McAte4,
    McAte5 as McAte5,
    McAte8 as McAte8,
    McAte42 as McAte42,
    PseudoVerletLeapfrog as PseudoVerletLeapfrog,
    Ruth3 as Ruth3,
    SofSpa10 as SofSpa10,
    SymplecticEuler as SymplecticEuler,
    VelocityVerlet as VelocityVerlet,
    VerletLeapfrog as VerletLeapfrog,
    Yoshida6 as Yoshida6,
)
from ._rattle import Rattle as Rattle
from ._reversible_rk import ReversibleRK as ReversibleRK
from ._solve_fixed import FixedSolution as FixedSolution, solve_fixed as solve_fixed
from ._splitting import (
    AbstractSplitting as AbstractSplitting,
    ConformalSplitting as ConformalSplitting,
    ExplicitSplitting as ExplicitSplitting,
    conformal as conformal,
)
from ._tableau import SplittingTableau as SplittingTableau
from ._terms import separable_terms as separable_terms, split_force_terms as split_force_terms


def __getattr__(name: str):
    # Renamed in the consolidation (issue 14): a structjax class must not share the name of
    # diffrax's `ButcherTableau` (the explicit Runge-Kutta table), which users import too.
    if name == "ButcherTableau":
        raise AttributeError(
            "`structjax.integrators.ButcherTableau` is now `structjax.integrators.ImplicitTableau`"
            " (the table of an implicit Runge-Kutta method; `diffrax.ButcherTableau` is "
            "diffrax's explicit one)."
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
