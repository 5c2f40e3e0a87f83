"""`python -m benchmarks <suite> [--quick]`."""

import argparse
import importlib
import time

from . import SUITES


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Run a structjax benchmark suite."
    )
    parser.add_argument("suite", choices=SUITES, help="the suite to run")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small set for a first look (writes benchmarks/results/quick/<suite>_quick.json "
        "and its plots, which git ignores, leaving the tracked full results alone)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when a floor is missed (by default floors are reported only)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="the folder for the JSON and PNG results (default: benchmarks/results)",
    )
    ns = parser.parse_args(argv)
    from . import _harness

    if ns.out is not None:
        from pathlib import Path

        _harness.RESULTS_DIR = Path(ns.out).resolve()
    elif ns.quick:
        _harness.RESULTS_DIR = _harness.QUICK_RESULTS_DIR
    module = importlib.import_module(f"{__package__}.{ns.suite}")
    start = time.perf_counter()
    module.run(quick=ns.quick)
    print(f"\n{ns.suite}{' --quick' if ns.quick else ''}: {time.perf_counter() - start:.1f} s")
    floors = _harness.REPORTED_FLOORS
    missed = [f for f in floors if not f.passed]
    print(
        f"floors: {len(floors) - len(missed)} of {len(floors)} met"
        + (f"; missed: {', '.join(f.name for f in missed)}" if missed else "")
        + ("" if ns.strict else " (floors are reported, not enforced: --strict exits 1 on a miss)")
        + f"; results in {_harness.RESULTS_DIR}"
    )
    if ns.strict and missed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
