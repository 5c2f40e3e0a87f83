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
        help="a small set that finishes in under a minute on 2 CPU cores "
        "(writes <suite>_quick.json, leaving the full results alone)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="the folder for the JSON and PNG results (default: benchmarks/results)",
    )
    ns = parser.parse_args(argv)
    if ns.out is not None:
        from pathlib import Path

        from . import _harness

        _harness.RESULTS_DIR = Path(ns.out).resolve()
    module = importlib.import_module(f"{__package__}.{ns.suite}")
    start = time.perf_counter()
    module.run(quick=ns.quick)
    print(f"\n{ns.suite}{' --quick' if ns.quick else ''}: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
