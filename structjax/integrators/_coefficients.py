"""Coefficient tables of the explicit splitting methods, each with its source.

Conventions: a *drift* is $q \\mathrel{+}= a h\\,\\partial T/\\partial p$, a *kick* is
$p \\mathrel{+}= b h\\,F(q)$. McLachlan & Atela (1992) write a stage as a kick with $b_i$
followed by a drift with $a_i$. OrdinaryDiffEq.jl
(`lib/OrdinaryDiffEqSymplecticRK/src/symplectic_tableaus.jl`) stores the same numbers but
applies `b[i]` as a drift and `a[i]` as a kick: the role swap keeps the order of a method
for general separable H but destroys the extra Runge-Kutta-Nystrom order of McAte4, McAte5
and CalvoSanz4 (measured there: order 3 instead of 4, 5, 4). Here every table is applied as
its paper writes it, and `tests/integrators/test_order.py` measures each declared order.
"""

import math

from ._tableau import SplittingTableau

_CBRT2 = 2.0 ** (1.0 / 3.0)


def _stages(drift, kick, *, order, source, rkn=False, first="drift", general_order=None):
    """Stage form: (drift[i], kick[i]) pairs, or (kick[i], drift[i]) if `first="kick"`."""
    if first == "drift":
        return SplittingTableau.from_stages(
            drift,
            kick,
            first_kind="drift",
            order=order,
            rkn=rkn,
            source=source,
            general_order=general_order,
        )
    return SplittingTableau.from_stages(
        kick,
        drift,
        first_kind="kick",
        order=order,
        rkn=rkn,
        source=source,
        general_order=general_order,
    )


def _palindromic_word(first, half, *, order, source, rkn=False, general_order=None):
    """A symmetric word given up to and including its middle factor."""
    half = tuple(half)
    return SplittingTableau(first, half + half[-2::-1], order, rkn, source, general_order)


def _palindrome(half, *, odd):
    """Weights `w1..wk` of a symmetric composition, mirrored (`odd`: centre not repeated)."""
    half = tuple(half)
    return half + (half[-2::-1] if odd else half[::-1])


# --- order 1 and 2 ---------------------------------------------------------------------

# Symplectic Euler (Hairer, Lubich & Wanner, GNI, Thm VI.3.3): drift with p_n, kick at
# q_{n+1} -- diffrax's `SemiImplicitEuler`.
SYMPLECTIC_EULER = _stages([1.0], [1.0], order=1, source="HLW GNI (2006) Thm VI.3.3")

# Velocity Verlet (Swope et al. 1982, J. Chem. Phys. 76:637; HLW GNI eq. I.1.17):
# kick h/2, drift h, kick h/2 -- one force evaluation per step with FSAL.
VELOCITY_VERLET = SplittingTableau(
    "kick", (0.5, 1.0, 0.5), order=2, source="Swope, Andersen, Berens & Wilson 1982"
)

# Verlet leapfrog, position form (Verlet 1967, Phys. Rev. 159:98; HLW GNI I.1.4):
# drift h/2, kick h, drift h/2.
VERLET_LEAPFROG = SplittingTableau(
    "drift", (0.5, 1.0, 0.5), order=2, source="Verlet 1967; HLW GNI I.1.4"
)

# McLachlan & Atela 1992 (Nonlinearity 5:541), Table 2 "pseudo-leapfrog": a = (1, 0),
# b = (1/2, 1/2), in their form kick b_i then drift a_i. OrdinaryDiffEq.jl applies its
# table drift-first, which turns it into the position form; we follow the paper.
PSEUDO_VERLET_LEAPFROG = _stages(
    [1.0, 0.0], [0.5, 0.5], order=2, first="kick", source="McLachlan & Atela 1992, Table 2"
)  # = kick h/2, drift h, kick h/2: the same map as velocity Verlet

# McLachlan & Atela 1992, the optimal two-stage second-order method (their eq. 4.2):
# a2 = 1 - 1/sqrt(2), a1 = 1 - a2, b2 = 1/(2(1 - a2)), b1 = 1 - b2.
_A2 = 1.0 - 0.5 * math.sqrt(2.0)
_B2 = 1.0 / (2.0 * (1.0 - _A2))
MCATE2 = _stages(
    [1.0 - _A2, _A2],
    [1.0 - _B2, _B2],
    order=2,
    first="kick",
    source="McLachlan & Atela 1992, eq. 4.2",
)

# --- order 3 ---------------------------------------------------------------------------

# Ruth 1983 (IEEE Trans. Nucl. Sci. 30:2669): drifts c = (1, -2/3, 2/3), kicks
# d = (-1/24, 3/4, 7/24), a drift then a kick per stage.
RUTH3 = _stages([1.0, -2 / 3, 2 / 3], [-1 / 24, 3 / 4, 7 / 24], order=3, source="Ruth 1983")

# McLachlan & Atela 1992, optimal three-stage third-order method (Table 2).
_MA3 = 0.9196615230173999
_MA3_2 = 0.25 / _MA3 - _MA3 / 2
_MA3_3 = 1.0 - _MA3 - _MA3_2
MCATE3 = _stages(
    [_MA3, _MA3_2, _MA3_3],
    [_MA3_3, _MA3_2, _MA3],
    order=3,
    first="kick",
    source="McLachlan & Atela 1992, Table 2",
)

# --- order 4 ---------------------------------------------------------------------------

# Candy & Rozmus 1991 (J. Comput. Phys. 92:230), = Forest & Ruth 1990: the triple jump of
# leapfrog written out; three force evaluations per step with FSAL.
CANDY_ROZ4 = _stages(
    [0.0, 1 / (2 - _CBRT2), 1 / (1 - _CBRT2**2), 1 / (2 - _CBRT2)],
    [(2 + _CBRT2 + 1 / _CBRT2) / 6, (1 - _CBRT2 - 1 / _CBRT2) / 6]
    + [(1 - _CBRT2 - 1 / _CBRT2) / 6, (2 + _CBRT2 + 1 / _CBRT2) / 6],
    order=4,
    source="Candy & Rozmus 1991, eq. 15",
)

# McLachlan & Atela 1992, four-stage fourth-order Runge-Kutta-Nystrom method (Table 2):
# order 4 only for T quadratic.
MCATE4 = _stages(
    [0.515352837431122936, -0.085782019412973646, 0.441583023616466524, 0.128846158365384185],
    [0.134496199277431089, -0.224819803079420806, 0.756320000515668291, 0.334003603286321425],
    first="kick",
    order=4,
    rkn=True,
    general_order=3,  # measured: tests/integrators/test_order.py
    source="McLachlan & Atela 1992, Table 2 (RKN)",
)

# Calvo & Sanz-Serna 1993 (Int. J. Mod. Phys. C 4:385), the optimised five-stage
# fourth-order Runge-Kutta-Nystrom method: order 4 for T quadratic (measured: 3 otherwise).
CALVO_SANZ4 = _stages(
    [0.20517766154229, 0.40302128160421, -0.12092087633891, 0.51272193319241, 0.0],
    [0.061758858135626, 0.33897802655364, 0.61479130717558, -0.14054801465937, 0.12501982279453],
    first="kick",
    order=4,
    rkn=True,
    general_order=3,  # measured: tests/integrators/test_order.py
    source="Calvo & Sanz-Serna 1993",
)

# McLachlan 1995 (SIAM J. Sci. Comput. 16:151), method SB3A with five force evaluations,
# order 4 for general separable H: D(a1) K(b1) D(a2) K(b2) D(a3) K(b3) D(a3) K(b2) ... D(a1).
# Numbers as in boost odeint `symplectic_rkn_sb3a_mclachlan.hpp` and Principia
# `McLachlan1995SB3A5`. OrdinaryDiffEq.jl stores the same numbers but swaps drifts and kicks
# and merges the two middle drifts, which leaves a first-order method (its "BROKEN").
_M42_A = (0.40518861839525227722, -0.28714404081652408900)
_M42_B = (-3 / 73, 17 / 59)
MCATE42 = _palindromic_word(
    "drift",
    (
        _M42_A[0],
        _M42_B[0],
        _M42_A[1],
        _M42_B[1],
        0.5 - sum(_M42_A),
        1 - 2 * sum(_M42_B),
    ),
    order=4,
    source="McLachlan 1995, SB3A (5 force evaluations)",
)

# Blanes & Moan 2002 (J. Comput. Appl. Math. 142:313), Table 3, SRKN_6^b: six forces,
# kick first and last (FSAL), its error constants optimised for T quadratic. Numbers as in
# Principia `BlanesMoan2002SRKN6B`; the last coefficient of each kind from consistency.
# Measured (tests/integrators/test_order.py): order 4 for general separable H as well, so
# it carries no RKN restriction.
_BM4_B = (0.0829844064174052, 0.396309801498368, -0.0390563049223486)
_BM4_A = (0.245298957184271, 0.604872665711080)
BLANES_MOAN4 = _palindromic_word(
    "kick",
    (
        _BM4_B[0],
        _BM4_A[0],
        _BM4_B[1],
        _BM4_A[1],
        _BM4_B[2],
        0.5 - sum(_BM4_A),
        1 - 2 * sum(_BM4_B),
    ),
    order=4,
    source="Blanes & Moan 2002, Table 3, SRKN_6^b",
)

# Blanes & Moan 2002, Table 3, SRKN_11^b: eleven forces, order 6 for T quadratic (4 in
# general). Principia `BlanesMoan2002SRKN11B`.
_BM6_B = (
    0.0414649985182624,
    0.198128671918067,
    -0.0400061921041533,
    0.0752539843015807,
    -0.0115113874206879,
)
_BM6_A = (
    0.123229775946271,
    0.290553797799558,
    -0.127049212625417,
    -0.246331761062075,
    0.357208872795928,
)
BLANES_MOAN6 = _palindromic_word(
    "kick",
    tuple(x for pair in zip(_BM6_B, _BM6_A) for x in pair)
    + (0.5 - sum(_BM6_B), 1 - 2 * sum(_BM6_A)),
    order=6,
    rkn=True,
    general_order=4,  # measured: tests/integrators/test_order.py
    source="Blanes & Moan 2002, Table 3, SRKN_11^b",
)

# Blanes & Moan 2002, Table 2, S_6 and S_10: optimised methods of order 4 and 6 for general
# separable H, the outer set on the kicks (as Principia `BlanesMoan2002S6`/`S10`).
_BMS6_K = (0.0792036964311957, 0.353172906049774, -0.0420650803577195)
_BMS6_D = (0.209515106613362, -0.143851773179818)
BLANES_MOAN4_GENERAL = _palindromic_word(
    "kick",
    (
        _BMS6_K[0],
        _BMS6_D[0],
        _BMS6_K[1],
        _BMS6_D[1],
        _BMS6_K[2],
        0.5 - sum(_BMS6_D),
        1 - 2 * sum(_BMS6_K),
    ),
    order=4,
    source="Blanes & Moan 2002, Table 2, S_6",
)
_BMS10_K = (
    0.0502627644003922,
    0.413514300428344,
    0.0450798897943977,
    -0.188054853819569,
    0.541960678450780,
)
_BMS10_D = (0.148816447901042, -0.132385865767784, 0.067307604692185, 0.432666402578175)
BLANES_MOAN6_GENERAL = _palindromic_word(
    "kick",
    tuple(x for pair in zip(_BMS10_K, _BMS10_D) for x in pair)
    + (_BMS10_K[4], 0.5 - sum(_BMS10_D), 1 - 2 * sum(_BMS10_K)),
    order=6,
    source="Blanes & Moan 2002, Table 2, S_10",
)

# --- order 5 ---------------------------------------------------------------------------

# McLachlan & Atela 1992, six-stage fifth-order RKN method (Table 2): T quadratic.
MCATE5 = _stages(
    [
        0.3398396258391100000,
        -0.088601336903027329,
        0.5858564768259621188,
        -0.603039356536491888,
        0.3235807965546976394,
        0.4423637942197494587,
    ],
    [
        0.1193900292875672758,
        0.6989273703824752308,
        -0.1713123582716007754,
        0.4012695022513534480,
        0.0107050818482359840,
        -0.0589796254980311632,
    ],
    first="kick",
    order=5,
    rkn=True,
    general_order=3,  # measured: tests/integrators/test_order.py
    source="McLachlan & Atela 1992, Table 2 (RKN)",
)

# --- compositions of velocity Verlet ---------------------------------------------------


def compose_verlet(weights, *, order, source):
    """The composition of velocity Verlet with the given weights, as one merged word."""
    return VELOCITY_VERLET.compose(weights, order=order, source=source)


# Yoshida 1990 (Phys. Lett. A 150:262), Table 1, solution A: w1, w2, w3, w0 = 1 - 2(w1+w2+w3).
_Y6 = (-1.17767998417887100694641568, 0.23557321335935813368479318, 0.78451361047755726381949763)
YOSHIDA6 = compose_verlet(
    _palindrome((_Y6[2], _Y6[1], _Y6[0], 1 - 2 * sum(_Y6)), odd=True),
    order=6,
    source="Yoshida 1990, Table 1 (solution A)",
)

# Kahan & Li 1997 (Math. Comp. 66:1089), s9odr6a: 9 stages, order 6.
KAHAN_LI6 = compose_verlet(
    _palindrome(
        (
            0.39216144400731413927925056,
            0.33259913678935943859974864,
            -0.70624617255763935980996482,
            0.08221359629355080023149045,
            0.79854399093482996339895035,
        ),
        odd=True,
    ),
    order=6,
    source="Kahan & Li 1997, s9odr6a",
)

# McLachlan 1995 (SIAM J. Sci. Comput. 16:151), 15 stages, order 8.
MCATE8 = compose_verlet(
    _palindrome(
        (
            0.74167036435061295344822780,
            -0.40910082580003159399730010,
            0.19075471029623837995387626,
            -0.57386247111608226665638773,
            0.29906418130365592384446354,
            0.33462491824529818378495798,
            0.31529309239676659663205666,
            -0.79688793935291635401978884,
        ),
        odd=True,
    ),
    order=8,
    source="McLachlan 1995, 15-stage order 8",
)

# Kahan & Li 1997, s17odr8a: 17 stages, order 8.
KAHAN_LI8 = compose_verlet(
    _palindrome(
        (
            0.13020248308889008087881763,
            0.56116298177510838456196441,
            -0.38947496264484728640807860,
            0.15884190655515560089621075,
            -0.39590389413323757733623154,
            0.18453964097831570709183254,
            0.25837438768632204729397911,
            0.29501172360931029887096624,
            -0.60550853383003451169892108,
        ),
        odd=True,
    ),
    order=8,
    source="Kahan & Li 1997, s17odr8a",
)

# Sofroniou & Spaletta 2005 (Optim. Methods Softw. 20:597), 35 stages, order 10.
SOFSPA10 = compose_verlet(
    _palindrome(
        (
            0.07879572252168641926390768,
            0.31309610341510852776481247,
            0.02791838323507806610952027,
            -0.22959284159390709415121340,
            0.13096206107716486317465686,
            -0.26973340565451071434460973,
            0.07497334315589143566613711,
            0.11199342399981020488957508,
            0.36613344954622675119314812,
            -0.39910563013603589787862981,
            0.10308739852747107731580277,
            0.41143087395589023782070412,
            -0.00486636058313526176219566,
            -0.39203335370863990644808194,
            0.05194250296244964703718290,
            0.05066509075992449633587434,
            0.04967437063972987905456880,
            0.04931773575959453791768001,
        ),
        odd=True,
    ),
    order=10,
    source="Sofroniou & Spaletta 2005, 35-stage order 10",
)
