"""Shared machinery of the suites: timing, progress, tables, floors, JSON and PNG output.

Timing keeps compilation apart from running: `compile_fn` times
`jax.jit(f).lower(*args).compile()` (trace + lower + XLA compile), and the wall time is that
of the compiled executable alone, up to `jax.block_until_ready`, best of several calls.
Speed *ratios* come from `time_interleaved`, which alternates the contenders round by round
so that a slow spell of a shared machine hits all of them alike.
"""

import dataclasses
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# Quick runs write here (git ignores it), so trying the main job leaves the tracked results
# and `git status` alone.
QUICK_RESULTS_DIR = RESULTS_DIR / "quick"
# Every floor reported in this process, for the closing summary of `python -m benchmarks`.
REPORTED_FLOORS: list["Floor"] = []

try:
    import tqdm as _tqdm
except ImportError:  # the progress bar falls back to plain prints
    _tqdm = None


# --- timing ----------------------------------------------------------------------------


def compile_fn(fn: Callable, *args) -> tuple[Callable, float]:
    """`jax.jit(fn)` compiled for `args`, and the seconds that took (trace, lower, compile)."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def _call(compiled: Callable, args) -> tuple[Any, float]:
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    return out, time.perf_counter() - start


@dataclasses.dataclass
class Timing:
    """Wall times of a compiled call: `best` (min), `median`, and every call's `times`."""

    times: list[float]

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return float(np.median(self.times))


def time_call(
    compiled: Callable, *args, budget_s: float = 0.5, max_calls: int = 5
) -> tuple[Any, Timing]:
    """Call `compiled(*args)` until `budget_s` has passed or `max_calls` calls were made
    (at least once; a call that takes longer than the budget is made once).

    **Returns:** the output of the last call and the `Timing` of all calls.
    """
    times: list[float] = []
    start = time.perf_counter()
    while True:
        out, elapsed = _call(compiled, args)
        times.append(elapsed)
        if len(times) >= max_calls or time.perf_counter() - start >= budget_s:
            return out, Timing(times)


def time_interleaved(cases: dict[str, tuple[Callable, tuple]], rounds: int) -> dict[str, Timing]:
    """Time several compiled calls alternately: one warm-up call each, then `rounds` rounds
    in which every case runs once, the order rotating from round to round."""
    names = list(cases)
    for name in names:
        _call(*cases[name])
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(_call(*cases[name])[1])
    return {name: Timing(t) for name, t in times.items()}


# --- progress and printing -------------------------------------------------------------


class Progress:
    """A progress bar (tqdm if installed, else a line every ~10%). Use `say` to print
    without breaking the bar."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.done, self._next = total, desc, 0, 0.1
        self._start = time.perf_counter()
        self._bar = (
            _tqdm.tqdm(total=total, desc=desc, unit="run", dynamic_ncols=True, leave=True)
            if _tqdm is not None
            else None
        )

    def update(self, label: str = "") -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.set_postfix_str(label[:40], refresh=False)
            self._bar.update(1)
        elif self.done / max(self.total, 1) >= self._next or self.done == self.total:
            elapsed = time.perf_counter() - self._start
            print(f"{self.desc}: {self.done}/{self.total} runs, {elapsed:.0f} s", flush=True)
            self._next += 0.1

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def say(message: str = "") -> None:
    """Print a line, above the progress bar if one is showing."""
    if _tqdm is not None:
        _tqdm.tqdm.write(message)
    else:
        print(message, flush=True)


def fmt(x, spec: str = ".2e") -> str:
    """A number for a table: `-` for None, `nan`/`inf` as such."""
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return format(x, spec)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]

    def line(cells):
        first = str(cells[0]).ljust(widths[0])
        return "  ".join([first] + [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:])])

    say(f"\n{title}")
    say(line(columns))
    say("  ".join("-" * w for w in widths))
    for row in rows:
        say(line(row))


@dataclasses.dataclass
class Floor:
    """A performance promise checked in the run: `measured <= threshold` passes."""

    name: str
    measured: float | None
    threshold: float
    detail: str

    @property
    def passed(self) -> bool:
        return self.measured is not None and self.measured <= self.threshold

    def report(self) -> None:
        REPORTED_FLOORS.append(self)
        verdict = "PASS" if self.passed else "MISS"
        value = "n/a" if self.measured is None else f"{self.measured:.3g}"
        say(f"{verdict}  {self.name}: {value} (floor <= {self.threshold:g}); {self.detail}")

    def to_json(self) -> dict:
        return dict(dataclasses.asdict(self), passed=self.passed)


# --- results ---------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parent.parent
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "structjax"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def machine_info() -> dict:
    """Where and with what the benchmark ran."""
    device = jax.devices()[0]
    return dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        platform=platform.platform(),
        processor=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        python=sys.version.split()[0],
        jax_backend=jax.default_backend(),
        device=getattr(device, "device_kind", str(device)),
        x64=bool(jax.config.jax_enable_x64),
        versions={d: _version(d) for d in ("jax", "jaxlib", "diffrax", "equinox", "structjax")},
        structjax_commit=_git_commit(),
    )


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray | jax.Array):
        return _jsonable(np.asarray(x).tolist())
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no nan/inf
    return x


def write_json(name: str, data: dict) -> Path:
    """Write `results/<name>.json` (through a temporary file, so a crash leaves no stub)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(data), indent=1) + "\n")
    os.replace(tmp, path)
    return path


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, name: str) -> Path:
    """Write `results/<name>.png` and close the figure."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return path
