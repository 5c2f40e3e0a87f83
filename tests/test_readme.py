"""README's tour runs as written: every ```python block, in order, in one namespace (as a
reader pasting them one after the other would), and the structure each block promises holds
on the objects it built."""

import pathlib
import re

import jax
import jax.numpy as jnp

README = pathlib.Path(__file__).parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_every_readme_block_runs_and_its_claims_hold():
    blocks = _blocks()
    assert len(blocks) >= 10
    ns: dict = {}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"README.md, python block {i}", "exec"), ns)  # noqa: S102
        except Exception as e:  # name the block, so a reader can find it
            raise AssertionError(f"README python block {i} fails: {e!r}\n{block}") from e
    check, si, sm, se = ns["check"], ns["si"], ns["sm"], ns["se"]
    # the tour's claims, measured on what it built
    y0, terms = ns["y0"], ns["terms"]
    step = lambda q, p: si.KahanLi8().one_step(terms, 0.0, 0.1, (q, p))  # noqa: E731
    assert float(check.symplecticity_error(step, *y0)) < 1e-12
    order = check.convergence_order(ns["solve_fn"], [0.05, 0.025, 0.0125], ns["reference"])
    assert 3.7 < order < 4.5, order
    res, rate = ns["res"], ns["rate"]
    assert [r["setup"] for r in res.rows] == ["BlanesMoan4"] * 2 + ["Tsit5"] * 2
    assert all(r["ok"] and r["final_error"] < 1e-2 for r in res.rows)
    assert rate.declared_order == 4 and abs(rate.order - 4) < 0.3, rate
    assert float(check.constraint_error(sm.Stiefel(256, 32), ns["w"])) < 1e-10
    factor = jnp.exp(-ns["gamma"] * ns["h"])
    assert float(check.conformal_symplecticity_error(ns["step"], ns["q"], ns["p"], factor)) < 1e-12
    rel = lambda a, b: max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(a, b)) / max(  # noqa: E731
        float(jnp.max(jnp.abs(v))) for v in b)  # fmt: skip
    leaves = lambda t: [v for v in jax.tree.leaves(t) if hasattr(v, "shape")]  # noqa: E731
    assert rel(leaves(ns["g_sym"]), leaves(ns["g_ad"])) < 1e-12
    assert ns["node_check"].discrete < 1e-12
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in leaves(ns["g_rev"]))
    net = ns["net"]
    assert float(check.symplecticity_error(lambda q, p: net((q, p)), ns["q"], ns["p"])) < 1e-12
    flow, x = ns["flow"], ns["z"]
    assert float(check.inversion_error(flow.forward, flow.inverse, x)) < 1e-12
    assert float(check.lipschitz_lower_bound(ns["layer"], jnp.ones(64), ns["key"])) <= 1 + 1e-9
    model, g, rep_in = ns["model"], ns["G"], ns["rep_in"]
    err = check.equivariance_error(model, g, ns["x"], ns["key"], rep_in=rep_in,
                                   rep_out=se.Scalar(g))  # fmt: skip
    assert float(err) < 1e-10


def test_docs_pages_blocks_run():
    """The site's own pages (those not included from README, which the test above runs): each
    page's ```python blocks run in order in one namespace, and the first solve is symplectic."""
    docs = README.parent / "docs"
    ran = 0
    for page in sorted(docs.glob("*.md")) + sorted((docs / "guides").glob("*.md")):
        ns: dict = {}
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
            try:
                exec(compile(block, f"{page.name}, python block {i}", "exec"), ns)  # noqa: S102
            except Exception as e:
                raise AssertionError(f"{page.name} python block {i} fails: {e!r}\n{block}") from e
            ran += 1
        if page.name == "index.md":
            assert float(ns["sc"].symplecticity_error(ns["step"], *ns["y0"])) < 1e-12
    assert ran >= 1
