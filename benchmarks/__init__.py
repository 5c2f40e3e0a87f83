"""structjax benchmark suites: `python -m benchmarks <suite> [--quick]`.

Each suite is a module of this package with a function `run(*, quick: bool) -> dict`; it
measures structjax against the reference a user would otherwise pick, in the same run, and
writes `benchmarks/results/<suite>.json` (`<suite>_quick.json` with `--quick`) and PNG plots.
Adding a suite means adding its module and its name to `SUITES`.

Everything runs in float64.
"""

import jax

jax.config.update("jax_enable_x64", True)

SUITES: tuple[str, ...] = (
    "integrators",
    "optimizers",
    "conformal",
    "nn",
    "equivariant",
    "guards",
    "scaling",
    "adjoints",
)
