"""Shared machinery of the suites: timing, progress, tables, floors, the digits data, the
training loop, and the end of every suite's run (floors, machine, JSON and PNG output).

Timing keeps compilation apart from running: `compile_fn` times
`jax.jit(f).lower(*args).compile()` (trace + lower + XLA compile), and the wall time is that
of the compiled executable alone, up to `jax.block_until_ready`, best of several calls.
Speed *ratios* come from `time_interleaved`, which alternates the contenders round by round
so that a slow spell of a shared machine hits all of them alike.
"""

import dataclasses
import datetime
import functools
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

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from structjax.benchmark._work_precision import _jsonable as jsonable

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


_jsonable = jsonable  # one JSON conversion, the package's (structjax.benchmark)


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


# --- data ------------------------------------------------------------------------------


def digits(
    *,
    scale: str = "unit",
    pad_to: int | None = None,
    test_size: float = 0.25,
    val_size: float | None = None,
    std_eps: float = 0.0,
    seed: int = 0,
    dtype=jnp.float32,
):
    """scikit-learn's 8x8 digits (1797 images; Alpaydin & Kaynak 1998), split stratified with
    `random_state=seed`: `test_size` of the images for testing and, with `val_size`, that
    fraction of the rest for validation.

    `scale="unit"`: pixels / 16, in [0, 1]; `"standardise"`: minus the training mean, over
    the training standard deviation plus `std_eps` (a zero one taken as 1, as
    `sklearn.preprocessing.StandardScaler`). `pad_to`: images `(m, 1, pad_to, pad_to)`, the
    8x8 image zero-padded below and to the right (9: the grid has a centre pixel, so
    rotations by 90 degrees about it permute pixels exactly); else flat `(m, 64)`.

    **Returns:** `((x_train, y_train), (x_test, y_test))`, with `val_size`
    `((x_train, y_train), (x_val, y_val), (x_test, y_test))`: images in `dtype`, labels int32.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    if scale == "unit":
        x = x / 16.0
    elif scale != "standardise":
        raise ValueError(f"scale must be 'unit' or 'standardise', not {scale!r}")
    if pad_to is not None:
        x = np.pad(x.reshape(-1, 8, 8), ((0, 0), (0, pad_to - 8), (0, pad_to - 8)))[:, None]
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    parts = [(x_tr, y_tr)]
    if val_size is not None:
        x_tr, x_va, y_tr, y_va = train_test_split(
            x_tr, y_tr, test_size=val_size, random_state=seed, stratify=y_tr
        )
        parts = [(x_tr, y_tr), (x_va, y_va)]
    parts.append((x_te, y_te))
    if scale == "standardise":
        mean, std = x_tr.mean(0), x_tr.std(0) + std_eps
        std = np.where(std == 0, 1.0, std)
        parts = [((a - mean) / std, b) for a, b in parts]
    return tuple((jnp.asarray(a, dtype), jnp.asarray(b, jnp.int32)) for a, b in parts)


# --- training --------------------------------------------------------------------------


def cast(tree, dtype):
    """A copy of `tree` with every inexact array cast to `dtype`."""
    return jax.tree_util.tree_map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, tree)


def cosine(lr, steps: int):
    """The suites' learning-rate schedule: a cosine decay from `lr` to `lr / 100` over
    `steps` steps."""
    return optax.cosine_decay_schedule(lr, steps, 0.01)


def adam_cosine(lr, steps: int):
    """`optax.adam` on the `cosine` schedule."""
    return optax.adam(cosine(lr, steps))


def train_steps(loss: Callable, optimiser, batches=None, *, steps: int | None = None,
                record: bool = True) -> Callable:  # fmt: skip
    """The training loop of every suite, as a pure function to jit, vmap or time:
    `run(params, state)` makes one optimiser step per leading slice of `batches` (a pytree;
    if None, `steps` steps with `batch=None`) in one `lax.scan`, each the gradient of
    `loss(params, batch)` through `optimiser.update(grads, state, params)`.

    **Returns:** `run`, which returns `(params, state, losses)` (the loss before each step),
    with `record=False` `(params, state)`.
    """

    def run(params, state):
        def body(carry, batch):
            p, s = carry
            if record:
                value, grad = jax.value_and_grad(loss)(p, batch)
            else:
                value, grad = None, jax.grad(loss)(p, batch)
            updates, s = optimiser.update(grad, s, p)
            return (optax.apply_updates(p, updates), s), value

        (params, state), losses = jax.lax.scan(body, (params, state), batches, length=steps)
        return (params, state, losses) if record else (params, state)

    return run


def train(model, loss: Callable, optimiser, batches=None, *, steps: int | None = None,
          loop: bool = False):  # fmt: skip
    """Train the inexact arrays of `model` (`eqx.partition`) on `loss(model, batch)`.

    `optimiser`: an optax transformation, or a function of the parameters returning one
    (e.g. `riemannian_adam` over `manifolds_of(params)`). `batches` and `steps` as in
    `train_steps`. `loop=False`: `train_steps` in one jit; `loop=True`: a Python loop over
    one jitted step that donates the parameters and the optimiser state (XLA:CPU runs
    convolutions inside a `lax.scan` many times slower than the same step jitted alone).

    **Returns:** the trained model, the loss at each step (NumPy), and the wall time in
    seconds (compilation included).
    """
    params, static = eqx.partition(model, eqx.is_inexact_array)
    if not hasattr(optimiser, "update"):
        optimiser = optimiser(params)

    def objective(p, batch):
        return loss(eqx.combine(p, static), batch)

    start = time.perf_counter()
    state = optimiser.init(params)
    if loop:

        @functools.partial(jax.jit, donate_argnums=(0, 1))
        def step(p, s, batch):
            value, grad = jax.value_and_grad(objective)(p, batch)
            updates, s = optimiser.update(grad, s, p)
            return optax.apply_updates(p, updates), s, value

        values = []
        n = steps if steps is not None else jax.tree_util.tree_leaves(batches)[0].shape[0]
        for i in range(n):
            batch = jax.tree_util.tree_map(lambda b, i=i: b[i], batches)
            params, state, value = step(params, state, batch)
            values.append(value)
        losses = jnp.stack(values)
    else:
        params, state, losses = jax.jit(train_steps(objective, optimiser, batches, steps=steps))(
            params, state
        )
    losses = np.asarray(jax.block_until_ready(losses))
    return eqx.combine(params, static), losses, time.perf_counter() - start


# --- the end of a suite's run ----------------------------------------------------------


def header(suite: str, quick: bool, detail: str = "") -> None:
    """The first line of a suite's run: its name, quick or not, the device."""
    say(f"{suite} suite{' (quick)' if quick else ''}{detail} on {jax.devices()[0]}")


def finish(
    suite: str,
    quick: bool,
    results: dict,
    floors: Sequence[Floor],
    plots: Callable[[str], Sequence[Path]] | None = None,
    *,
    notes: dict | None = None,
    versions: Sequence[str] = (),
    to_json: Callable[[dict], dict] | None = None,
) -> dict:
    """The shared end of a suite's `run`, after its tables: report the floors; assemble
    `dict(suite, quick, machine, **results, floors, notes)` (`versions`: more distributions
    whose versions the machine info lists); write it to `results/<suite>[_quick].json`
    (through `to_json` if given, e.g. to drop what only the plots need); draw the plots
    (`plots(suffix)` returns the PNG paths); say where everything went.

    **Returns:** the assembled results.
    """
    say("\nFloors (reported, never enforced):")
    for floor in floors:
        floor.report()
    machine = machine_info()
    machine["versions"].update({d: _version(d) for d in versions})
    out = dict(suite=suite, quick=quick, machine=machine, **results)
    out["floors"] = [f.to_json() for f in floors]
    if notes is not None:
        out["notes"] = notes
    suffix = "_quick" if quick else ""
    path = write_json(f"{suite}{suffix}", out if to_json is None else to_json(out))
    pngs = [] if plots is None else list(plots(suffix))
    say(f"\nwrote {path.relative_to(path.parents[2])}" + "".join(f", {p.name}" for p in pngs))
    return out
