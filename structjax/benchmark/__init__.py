"""Work-precision sets and convergence studies: benchmark integrator variants on the problems
of `structjax.problems` (or your own), against each other and against diffrax's solvers."""

from ._work_precision import (
    Convergence as Convergence,
    Setup as Setup,
    WorkPrecision as WorkPrecision,
    convergence as convergence,
    evaluations as evaluations,
    plot as plot,
    work_precision as work_precision,
)
