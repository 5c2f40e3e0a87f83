"""Scaling suite: what a sharded structjax step communicates, at 1, 2, 4 and 8 devices.

`python -m benchmarks scaling [--quick]`. Everything runs in **float32**, on forced host
devices (`XLA_FLAGS=--xla_force_host_platform_device_count=N`, `JAX_PLATFORMS=cpu`). The
device count is fixed when JAX's backend starts, so each count runs in its own process
(`python -m benchmarks._scaling_worker N`, which prints its measurements as JSON). Each
measures, on a 1-D mesh `Mesh(devices, ("d",))`:

1. a `riemannian_adam` step (`opt.update` + `optax.apply_updates`, jitted) on one n x p
   Stiefel weight with its rows sharded, `P("d", None)` (fully-sharded data parallel;
   8192 x 64, quick 2048 x 32), and the same step compiled at n / 4;
2. an ensemble: `jax.vmap` over initial conditions of `solve_fixed(VelocityVerlet)` on an
   FPU-beta chain (4096 chains of 64 masses, 1000 steps; quick 64 x 32, 500), the batch
   sharded over the devices; and the same compiled with `checks=False`.

For each: compile time (trace + lower + XLA), the median time of the compiled call (up to
500 calls in 6 s; quick 10 in 0.3 s), the collectives of the compiled HLO
(`compile().as_text()`: counts by kind, and bytes on one device, from the result shapes and
dtypes), and the largest relative error (max |a - b| / max |b|) of the sharded result against
the same computation on one device.

**The times are not scaling.** Forced host devices are threads of one process sharing the
machine's CPU cores (2 on the machine of the committed results): N devices do not bring N
times the compute, and their collectives are memory copies. The collective counts and bytes,
which are what a real multi-device run would send over its links, are the measure. A
collective is counted on the run path unless it sits in a branch of an HLO `conditional`
(run only when that branch is taken); those are listed too.

Floors (issue 16): the Stiefel step all-reduces at most p x p Gram matrices (no all-gather of
the n x p weight, nothing but all-reduces) and the same bytes at n and n / 4; the ensemble
has no collective on its run path; sharded equals one device to 1e-5. Floors are printed PASS
or MISS; they report, they never fail the run.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from . import _harness as h

COUNTS = (1, 2, 4, 8)
_ERR_FLOOR = 1e-5
NOT_SCALING = (
    "Forced host devices (--xla_force_host_platform_device_count) are threads of one process "
    "sharing the machine's {cpus} CPU cores: the times below do NOT measure scaling (N devices "
    "bring no extra compute, and a collective is a memory copy). The collective counts and "
    "bytes per device are the measure."
)


def _worker(count: int, quick: bool) -> dict:
    """One device count in a fresh process."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={count}"])
    env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, "-m", "benchmarks._scaling_worker", str(count)]
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        cmd + (["--quick"] if quick else []), cwd=root, env=env, capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    if out.returncode != 0 or "JSON" not in out.stdout:
        raise RuntimeError(f"scaling worker at {count} devices failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.rsplit("JSON", 1)[1])


def _kinds(summary: dict) -> str:
    """`3 all-reduce` style counts of the run path, `-` for none."""
    parts = [f"{v} {k}" for k, v in summary["counts"].items() if v]
    return ", ".join(parts) or "-"


def _branch(summary: dict) -> str:
    n, b = summary["all_total"] - summary["total"], summary["all_bytes"] - summary["bytes"]
    return "-" if n == 0 else f"{n} ({b} B)"


def _tables(workers: list[dict]) -> None:
    one_s = workers[0]["stiefel"]["median_s"]
    s0 = workers[0]["stiefel"]
    h.print_table(
        f"riemannian_adam step, Stiefel({s0['n']}, {s0['p']}) rows sharded, float32 "
        "(times: forced host devices, NOT scaling)",
        ["devices", "compile s", "median step", "vs 1 dev", "collectives (run path)",
         "bytes/device", "at n/4", "in branches", "max rel err"],
        [[w["devices"], f"{w['stiefel']['compile_s']:.2f}", h.fmt(w["stiefel"]["median_s"]),
          f"{w['stiefel']['median_s'] / one_s:.2f}", _kinds(w["stiefel"]["collectives"]),
          w["stiefel"]["collectives"]["bytes"],
          w["stiefel"]["collectives_n_over_4"]["bytes"], _branch(w["stiefel"]["collectives"]),
          h.fmt(w["stiefel"]["rel_err"])] for w in workers],
    )  # fmt: skip
    e0 = workers[0]["ensemble"]
    one_e = e0["median_s"]
    h.print_table(
        f"ensemble: vmap of solve_fixed(VelocityVerlet), {e0['batch']} FPU chains of "
        f"{e0['dof']} masses, {e0['steps']} steps, batch sharded, float32 "
        "(times: forced host devices, NOT scaling)",
        ["devices", "compile s", "median solve", "per step", "vs 1 dev",
         "collectives (run path)", "bytes/device", "in branches", "checks=False",
         "max rel err"],
        [[w["devices"], f"{w['ensemble']['compile_s']:.2f}", h.fmt(w["ensemble"]["median_s"]),
          h.fmt(w["ensemble"]["median_per_step_s"]), f"{w['ensemble']['median_s'] / one_e:.2f}",
          _kinds(w["ensemble"]["collectives"]), w["ensemble"]["collectives"]["bytes"],
          _branch(w["ensemble"]["collectives"]),
          w["ensemble"]["collectives_checks_false"]["all_total"],
          h.fmt(w["ensemble"]["rel_err"])] for w in workers],
    )  # fmt: skip


def _floors(workers: list[dict]) -> list[h.Floor]:
    p = workers[0]["stiefel"]["p"]
    n = workers[0]["stiefel"]["n"]

    def elements(shape: str) -> int:
        dims = shape.split("[", 1)[1].rstrip("]")
        size = 1
        for d in dims.split(","):
            size *= int(d) if d else 1
        return size

    ops = [o for w in workers for o in w["stiefel"]["collectives"]["ops"]]
    largest = max((elements(s) for o in ops for s in o["shapes"]), default=0)
    others = sum(o["kind"] != "all-reduce" for o in ops)
    moved = [w["stiefel"]["collectives"]["bytes"] for w in workers]
    moved_small = [w["stiefel"]["collectives_n_over_4"]["bytes"] for w in workers]
    n_dependence = max(abs(a - b) / max(a, 1) for a, b in zip(moved, moved_small))
    ensemble = max(w["ensemble"]["collectives"]["total"] for w in workers)
    err = max(max(w["stiefel"]["rel_err"], w["ensemble"]["rel_err"]) for w in workers)
    return [
        h.Floor("Stiefel step gathers no n x p weight", largest / (p * p), 1.0,
                f"largest collective operand over {p} x {p} = {p * p} elements (the Gram); "
                f"the weight has {n} x {p}, every count"),
        h.Floor("Stiefel step: nothing but all-reduces", others, 0,
                "all-gathers, reduce-scatters, all-to-alls, permutes, every count"),
        h.Floor("Stiefel step bytes independent of n", n_dependence, 0,
                f"|bytes(n) - bytes(n/4)| / bytes(n) per device, largest over counts "
                f"(bytes at n: {moved})"),
        h.Floor("ensemble needs no collective", ensemble, 0,
                "collectives on the run path, largest over counts"),
        h.Floor("sharded equals one device", err, _ERR_FLOOR,
                "max |sharded - one device| / max |one device|, both cases, every count"),
    ]  # fmt: skip


def _plots(workers: list[dict], suffix: str, cpus: int) -> list[Path]:
    plt = h.pyplot()
    counts = [w["devices"] for w in workers]
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, label in (("stiefel", "riemannian_adam step, rows sharded"),
                       ("ensemble", "vmap(solve_fixed) ensemble, batch sharded")):  # fmt: skip
        ax.plot(counts, [w[key]["median_s"] / workers[0][key]["median_s"] for w in workers],
                "o-", label=label)  # fmt: skip
    ax.axhline(1.0, color="gray", lw=0.8, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.set_xlabel("forced host devices")
    ax.set_ylabel("median time / time on 1 device")
    ax.set_title(f"Not scaling: the devices share {cpus} CPU cores (float32)", fontsize=10)
    ax.legend(fontsize=8)
    time_png = h.save_figure(fig, f"scaling_time{suffix}")

    fig, ax = plt.subplots(figsize=(7, 4))
    s0 = workers[0]["stiefel"]
    series = [
        (f"Stiefel({s0['n']}, {s0['p']}) step", [w["stiefel"]["collectives"]["bytes"]
                                                  for w in workers], "o-"),
        (f"Stiefel({s0['n'] // 4}, {s0['p']}) step",
         [w["stiefel"]["collectives_n_over_4"]["bytes"] for w in workers], "x--"),
        ("ensemble, run path", [w["ensemble"]["collectives"]["bytes"] for w in workers], "s-"),
        ("ensemble, all (conditional branches too)",
         [w["ensemble"]["collectives"]["all_bytes"] for w in workers], "^:"),
    ]  # fmt: skip
    for label, values, style in series:
        ax.plot(counts, values, style, label=label)
    shard = s0["n"] * s0["p"] * 4
    ax.axhline(shard / 8, color="tab:red", lw=0.8, ls=":",
               label=f"one 8-device shard of the weight ({shard // 8} B)")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("symlog", linthresh=100)
    ax.set_ylim(-10, shard)
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.set_xlabel("forced host devices")
    ax.set_ylabel("collective bytes per device per call")
    ax.set_title("What a sharded step communicates (compiled HLO, float32)", fontsize=10)
    ax.legend(fontsize=8)
    bytes_png = h.save_figure(fig, f"scaling_collectives{suffix}")
    return [time_png, bytes_png]


def run(*, quick: bool) -> dict:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    h.header("scaling", quick, f" (1, 2, 4, 8 forced host devices, one process each, {cpus} "
             "CPU cores)")  # fmt: skip
    note = NOT_SCALING.format(cpus=cpus)
    h.say(note)
    progress = h.Progress(len(COUNTS), "scaling")
    workers = []
    for count in COUNTS:
        workers.append(_worker(count, quick))
        progress.update(f"{count} devices")
        h.say(f"{count} device(s): {workers[-1]['seconds']:.1f} s in the worker")
    progress.close()
    _tables(workers)
    h.say("\n" + note)
    floors = _floors(workers)
    return h.finish(
        "scaling",
        quick,
        dict(devices=list(COUNTS), workers=workers),
        floors,
        lambda suffix: _plots(workers, suffix, cpus),
        notes=dict(
            not_scaling=note,
            bytes="per device per call, from the result shapes and dtypes of the collectives "
            "of the compiled HLO; 'in_branch' ones sit in a branch of a conditional and run "
            "only when it is taken",
            error="max |sharded - one device| / max |one device| over the outputs",
        ),
    )
