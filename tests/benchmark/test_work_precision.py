"""structjax.benchmark: convergence recovers every method's declared order on problems of the
library, work-precision sets are reproducible and count what they claim, ensembles (sharded
too) agree with their members, and every refusal names the call and the argument."""

import json
import os
import subprocess
import sys
import textwrap

import diffrax
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest

import structjax.integrators as si
import structjax.problems as sp
from structjax.benchmark import (
    Convergence,
    Setup,
    WorkPrecision,
    convergence,
    evaluations,
    plot,
    work_precision,
)
from structjax.integrators._methods import ALL_METHODS

# A step range in the asymptotic regime of each order on Kepler (e = 0.5, 0.7 of an orbit:
# not a whole period, where errors of some methods cancel).
_BASE = {1: 0.01, 2: 0.02, 3: 0.04, 4: 0.04, 5: 0.08, 6: 0.1, 8: 0.2, 10: 0.3}
KEPLER = sp.kepler(eccentricity=0.5, orbits=0.7)


def _check_order(c: Convergence, declared: int, symmetric: bool):
    assert c.declared_order == declared
    if symmetric:  # error expansion in even powers: the next term is two orders up
        assert abs(c.order - declared) < 0.3, c
    else:  # a small leading coefficient can show a higher rate before the asymptotic range
        assert declared - 0.25 < c.order < declared + 1.5, c


@pytest.mark.parametrize("cls", ALL_METHODS, ids=[c.__name__ for c in ALL_METHODS])
def test_convergence_recovers_every_splittings_order(cls):
    order = cls.tableau.order
    b = _BASE[order]
    c = convergence(KEPLER, cls(), [b, b / 2, b / 4])
    _check_order(c, order, symmetric=order % 2 == 0 and cls is not si.SymplecticEuler)


@pytest.mark.parametrize(
    "problem, solver, dts, declared, symmetric",
    [
        (sp.double_pendulum(t1=5.0), si.GaussLegendre(2), (0.2, 0.1, 0.05), 4, True),
        (sp.double_pendulum(t1=5.0), si.GaussLegendre(3), (0.4, 0.2, 0.1), 6, True),
        (sp.double_pendulum(t1=5.0), si.ImplicitMidpoint(), (0.1, 0.05, 0.025), 2, True),
        (sp.double_pendulum(t1=5.0), si.GeneralizedLeapfrog(), (0.1, 0.05, 0.025), 2, True),
        (sp.free_rigid_body(t1=5.0), si.RKMK(4), (0.2, 0.1, 0.05), 4, False),
        (sp.free_rigid_body(t1=5.0), si.CrouchGrossman3(), (0.1, 0.05, 0.025), 3, False),
        (sp.heavy_top(t1=5.0), si.RKMK(4), (0.2, 0.1, 0.05), 4, False),
        (
            sp.spherical_pendulum(t1=5.0),
            lambda pb: si.Rattle(pb.constraint),
            (0.1, 0.05, 0.025),
            2,
            True,
        ),
        (
            sp.damped_oscillator(t1=10.0),
            lambda pb: si.conformal(si.BlanesMoan4General(), pb.damping),
            (0.2, 0.1, 0.05),
            4,
            True,
        ),
        (KEPLER, diffrax.Tsit5(), (0.04, 0.02, 0.01), 5, False),
        (KEPLER, diffrax.Heun(), (0.01, 0.005, 0.0025), 2, False),
        (KEPLER, diffrax.Dopri8(), (0.2, 0.1, 0.05), 8, False),
    ],  # fmt: skip
    ids=[
        "GL4",
        "GL6",
        "midpoint",
        "gen-leapfrog",
        "RKMK4",
        "CG3",
        "RKMK4-top",
        "rattle",
        "conformal",
        "tsit5",
        "heun",
        "dopri8",
    ],  # fmt: skip
)
def test_convergence_of_the_other_families(problem, solver, dts, declared, symmetric):
    _check_order(convergence(problem, solver, list(dts)), declared, symmetric)


def test_convergence_catches_a_wrong_order():
    """A first-order method presented as fourth-order: the estimate says so."""
    c = convergence(KEPLER, si.SymplecticEuler(), [0.01, 0.005, 0.0025])
    assert (
        abs(c.order - 1) < 0.2 and not Convergence(**{**c.__dict__, "declared_order": 4}).agrees()
    )


SETUPS = [
    Setup(si.VelocityVerlet(), dts=[0.01, 0.005]),
    Setup(si.KahanLi8(), dts=[0.05]),
    Setup(diffrax.Tsit5(), tols=[1e-6, 1e-9]),
    Setup(diffrax.SemiImplicitEuler(), dts=[0.05], name="SIE"),
]


@pytest.fixture(scope="module")
def kepler_set():
    return work_precision(sp.kepler(orbits=2.0), SETUPS, samples=40, runs=2, progress=False)


def test_rows_and_their_measures(kepler_set):
    res = kepler_set
    assert res.setups() == ["VelocityVerlet", "KahanLi8", "Tsit5", "SIE"]
    assert [r["param"] for r in res.rows] == [0.01, 0.005, 0.05, 1e-6, 1e-9, 0.05]
    vv1, vv2, k8, t6, t9, sie = res.rows
    assert all(r["ok"] for r in res.rows)
    # The step used is reported: within 1/(2 samples) of the one asked, ending at t1,
    # each saved interval a whole number of steps, about 40 of them.
    saved = len(res.times[0]) - 1
    assert vv1["steps"] % saved == 0 and 30 <= saved <= 50
    assert abs(vv1["dt"] * vv1["steps"] - 4 * np.pi) < 1e-12 and abs(vv1["dt"] / 0.01 - 1) < 1 / (
        2 * saved
    )
    assert len(res.times[3]) == 41  # adaptive: exactly the sample times
    # Second order: halving the step quarters the final error.
    assert 3.5 < vv1["final_error"] / vv2["final_error"] < 4.5
    assert k8["final_error"] < 1e-6 and t9["final_error"] < t6["final_error"]
    # Symplectic: bounded energy error, no drift; the energy error of Verlet is O(dt^2).
    energy = vv2["invariants"]["energy"]
    assert energy["max_error"] < 1e-2 and abs(energy["drift"]) * 4 * np.pi < energy["max_error"]
    assert set(vv1["invariants"]) == {"energy", "angular_momentum", "runge_lenz"}
    # Verlet keeps the angular momentum exactly (a quadratic invariant of a splitting).
    assert vv1["invariants"]["angular_momentum"]["max_error"] < 1e-12
    assert res.rows[0]["evaluations"] == vv1["steps"] + 1
    assert t6["evaluations"] == 6 * t6["steps"] + 1 and sie["evaluations"] == sie["steps"]
    assert all(r["compile_s"] > 0 and r["wall_s"] > 0 and r["runs"] == 2 for r in res.rows)
    assert t9["compile_shared"] and not t6["compile_shared"]  # one compile per adaptive setup
    assert [r["order"] for r in res.rows] == [2, 2, 8, 5, 5, 1]
    assert len(res.series) == len(res.rows) == len(res.times)
    assert all(len(s["energy"]) == len(t) for s, t in zip(res.series, res.times))


def test_reproducible(kepler_set):
    again = work_precision(sp.kepler(orbits=2.0), SETUPS, samples=40, runs=1, progress=False)
    for a, b in zip(kepler_set.rows, again.rows):
        assert a["final_error"] == b["final_error"] and a["invariants"] == b["invariants"]
        assert a["steps"] == b["steps"] and a["evaluations"] == b["evaluations"]


def test_json_roundtrip_and_table(kepler_set, tmp_path):
    path = tmp_path / "wp.json"
    text = kepler_set.to_json(path)
    assert json.loads(path.read_text()) == json.loads(text)
    back = WorkPrecision.from_json(text)
    assert back.rows == json.loads(text)["rows"] and back.problem == "kepler"
    table = kepler_set.table()
    assert table.splitlines()[0] == kepler_set.title and "KahanLi8" in table


def test_plot_views(kepler_set):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for view in ("wall", "evaluations", "dt", "invariant"):
        ax = plot(kepler_set, view)
        assert len(ax.get_lines()) >= (3 if view == "dt" else 4), view
        plt.close(ax.figure)
    ax = plot(kepler_set, "invariant", invariant="angular_momentum")
    assert ax.get_ylabel() == "angular_momentum error"
    plt.close(ax.figure)
    with pytest.raises(ValueError, match=r"plot\(result, view=...\)` needs one of"):
        plot(kepler_set, "nope")
    with pytest.raises(ValueError, match="invariant=.*needs one of"):
        plot(kepler_set, "invariant", invariant="mass")


def _counting_problem():
    """An exponential decay whose vector field counts its own calls at run time."""
    calls = [0]

    def vf(t, y, args):
        jax.debug.callback(lambda: calls.__setitem__(0, calls[0] + 1))
        return -y

    pb = sp.Problem(name="decay", y0=jnp.ones(3), t1=1.0, ode_term=diffrax.ODETerm(vf),
                    exact=lambda t: jnp.exp(-t) * jnp.ones(3))  # fmt: skip
    return pb, calls


@pytest.mark.parametrize("solver, tol", [(diffrax.Tsit5(), 1e-8), (diffrax.Dopri8(), 1e-10),
                                         (diffrax.Heun(), None)])  # fmt: skip
def test_evaluations_count_what_runs(solver, tol):
    pb, calls = _counting_problem()
    setup = Setup(solver, tols=[tol]) if tol else Setup(solver, dts=[0.01])
    res = work_precision(pb, [setup], samples=4, runs=1, progress=False)
    # runs=1: the compiled solve ran once.
    assert res.rows[0]["evaluations"] == calls[0], (res.rows[0], calls)


def test_splitting_evaluations_count_forces():
    calls = [0]

    def potential(q, args):
        jax.debug.callback(lambda: calls.__setitem__(0, calls[0] + 1))
        return 0.5 * jnp.sum(q**2)

    kinetic = lambda p, args: 0.5 * jnp.sum(p**2)  # noqa: E731
    pb = sp.Problem(name="ho", y0=(jnp.ones(1), jnp.zeros(1)), t1=1.0,
                    ode_term=si.HamiltonianTerm(lambda q, p, a: kinetic(p, a) + potential(q, a)),
                    terms=si.separable_terms(kinetic, potential),
                    exact=lambda t: (jnp.cos(t)[None], -jnp.sin(t)[None]))  # fmt: skip
    for solver in (si.VelocityVerlet(), si.BlanesMoan4(), si.KahanLi8()):
        calls[0] = 0
        res = work_precision(pb, [Setup(solver, dts=[0.1])], samples=2, runs=1, progress=False)
        assert res.rows[0]["evaluations"] == calls[0] == evaluations(solver, 10), solver


def test_ensemble_is_the_worst_member():
    pb = sp.kepler(orbits=1.0)
    scales = jnp.asarray([1.0, 0.97, 1.03])
    y0s = jtu.tree_map(lambda a: scales[:, None] * a[None], pb.y0)
    setups = [Setup(si.BlanesMoan4(), dts=[0.05]), Setup(diffrax.Tsit5(), tols=[1e-8])]
    ens = work_precision(pb, setups, samples=10, runs=1, y0s=y0s, progress=False)
    assert ens.ensemble == 3
    members = []
    for i in range(3):
        y0 = jtu.tree_map(lambda a: a[i], y0s)
        own = sp.Problem(name="member", y0=y0, t1=pb.t1, ode_term=pb.ode_term, terms=pb.terms,
                         invariants=pb.invariants)  # fmt: skip
        members.append(work_precision(own, setups, samples=10, runs=1, progress=False))
    for j, row in enumerate(ens.rows):
        worst = max(m.rows[j]["final_error"] for m in members)
        assert abs(row["final_error"] - worst) <= 1e-9 * worst, (row["final_error"], worst)
        worst_e = max(m.rows[j]["invariants"]["energy"]["max_error"] for m in members)
        assert abs(row["invariants"]["energy"]["max_error"] - worst_e) <= 1e-9 * worst_e


def test_float32():
    pb = sp.kepler(orbits=1.0, dtype=jnp.float32)
    res = work_precision(pb, [Setup(si.BlanesMoan4(), dts=[0.05]),
                              Setup(diffrax.Tsit5(), tols=[1e-6])], samples=10, runs=1,
                         progress=False)  # fmt: skip
    assert all(r["ok"] for r in res.rows)
    assert res.rows[0]["final_error"] < 1e-4 and res.rows[1]["final_error"] < 1e-3


def test_sharded_ensemble_matches_one_device():
    """An ensemble sharded over 4 forced CPU devices: the same rows as unsharded, and the
    jitted run keeps the ensemble's sharding. In a subprocess: the device count must be set
    before JAX starts."""
    code = textwrap.dedent(
        """
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
        import jax, jax.numpy as jnp, jax.tree_util as jtu
        jax.config.update("jax_enable_x64", True)
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        import diffrax, structjax.integrators as si, structjax.problems as sp
        from structjax.benchmark import Setup, work_precision
        from structjax.benchmark._work_precision import _program
        assert len(jax.devices()) == 4
        pb = sp.kepler(orbits=1.0)
        scales = jnp.linspace(0.95, 1.05, 8)
        y0s = jtu.tree_map(lambda a: scales[:, None] * a[None], pb.y0)
        mesh = Mesh(jax.devices(), ("batch",))
        sharded = jax.device_put(y0s, NamedSharding(mesh, P("batch")))
        setups = [Setup(si.BlanesMoan4(), dts=[0.05]), Setup(diffrax.Tsit5(), tols=[1e-8])]
        a = work_precision(pb, setups, samples=10, runs=1, y0s=y0s, progress=False)
        b = work_precision(pb, setups, samples=10, runs=1, y0s=sharded, progress=False)
        for ra, rb in zip(a.rows, b.rows):
            assert abs(ra["final_error"] - rb["final_error"]) <= 1e-12 * ra["final_error"], (ra, rb)
            assert ra["steps"] == rb["steps"]
        solver = si.BlanesMoan4()
        fn, *_ = _program(pb, solver, pb.terms_for(solver), sharded, pb.sample_times(10), dt=0.05)
        ys, _, _ = fn(sharded, jnp.asarray(0.0))
        spec = ys[0].sharding.spec
        assert spec[0] == "batch", spec
        print("OK")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=600)  # fmt: skip
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: Setup(si.VelocityVerlet()), ValueError, r"exactly one of `dts`.*neither"),
        (lambda: Setup(si.VelocityVerlet(), dts=[0.1], tols=[1e-6]), ValueError, r"exactly one of"),
        (
            lambda: Setup(si.VelocityVerlet(), dts=[0.1, -0.1]),
            ValueError,
            r"Setup\(VelocityVerlet, dts=...\)` needs a non-empty list of positive",
        ),
        (lambda: Setup(diffrax.Tsit5(), tols=[]), ValueError, r"tols=...\)` needs a non-empty"),
        (lambda: Setup(3, dts=[0.1]), TypeError, r"Setup\(solver=...\)` needs a diffrax solver"),
        (lambda: work_precision(KEPLER, []), ValueError, r"needs a non-empty list of `Setup`s"),
        (
            lambda: work_precision(KEPLER, [Setup(si.VelocityVerlet(), dts=[0.1])], samples=0),
            ValueError,
            r"samples=...\)` needs an int >= 1",
        ),
        (
            lambda: work_precision(KEPLER, [Setup(si.VelocityVerlet(), dts=[0.1])], runs=0),
            ValueError,
            r"runs=...\)` needs an int >= 1",
        ),
        (
            lambda: work_precision(
                KEPLER, [Setup(si.VelocityVerlet(), dts=[0.1])], y0s=jnp.ones((2, 2))
            ),
            ValueError,
            r"y0s=...\)` needs the structure",
        ),
        (
            lambda: work_precision(KEPLER, [Setup(lambda pb: "solver", dts=[0.1])], progress=False),
            TypeError,
            r"returned str, not a diffrax solver",
        ),
        (
            lambda: work_precision(
                sp.double_pendulum(), [Setup(si.VelocityVerlet(), dts=[0.1])], progress=False
            ),
            ValueError,
            r"needs partitioned terms",
        ),
        (
            lambda: convergence(KEPLER, si.VelocityVerlet(), [0.1, 0.1]),
            ValueError,
            r"convergence\(..., dts=...\)` needs two or more distinct steps",
        ),
    ],  # fmt: skip
)
def test_refusals(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_a_failed_adaptive_solve_is_reported_not_raised():
    """A step limit reached is `ok=False` in the row (the set goes on), never a silent number."""
    res = work_precision(sp.kepler(orbits=2.0), [Setup(diffrax.Tsit5(), tols=[1e-10])],
                         max_steps=50, runs=1, progress=False)  # fmt: skip
    assert res.rows[0]["ok"] is False
