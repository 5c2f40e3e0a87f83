"""Run a measurement script on 8 forced host devices, once per test session.

The device count must be set before JAX starts, so each scale-out measurement is a script
run in a subprocess with `XLA_FLAGS=--xla_force_host_platform_device_count=8` that prints
`JSON{...}`. Under pytest-xdist the first worker to need a script runs it and the others read
its JSON (a file lock in the session's shared temp folder, the pattern pytest-xdist
documents), so no 8-device run is repeated.
"""

import fcntl
import hashlib
import json
import os
import subprocess
import sys

# The regex parser of collectives in compiled HLO text, shared by the scripts (prepended).
HLO_TOOLS = r'''
import re
COLL = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_OP = re.compile(r"=\s*(\([^=]*?\)|\S+)\s+(" + "|".join(COLL) + r")(?:-start)?\(")
_SHAPE = re.compile(r"[a-z]+[0-9]*\[([0-9,]*)\]")


def collectives(text):
    """[kind, [shape, ...]] for every collective op of a compiled module's HLO text."""
    found = []
    for line in text.splitlines():
        # Long tuples print "/*index=5*/" comments among their shapes: drop them first.
        mo = _OP.search(re.sub(r"/\*index=[0-9]+\*/", "", line))
        if mo:
            shapes = [[int(d) for d in s.split(",") if d] for s in _SHAPE.findall(mo.group(1))]
            found.append([mo.group(2), shapes])
    return found
'''


def run_script(script: str, *, x64: bool = False, timeout: int = 600) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_ENABLE_X64")}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
    if x64:
        env["JAX_ENABLE_X64"] = "1"
    out = subprocess.run([sys.executable, "-c", HLO_TOOLS + script], capture_output=True,
                         text=True, env=env, timeout=timeout)  # fmt: skip
    assert out.returncode == 0 and "JSON" in out.stdout, out.stderr[-3000:]
    return json.loads(out.stdout.split("JSON", 1)[1])


def measured_once(script: str, tmp_path_factory, worker_id: str, *, x64: bool = False) -> dict:
    """`run_script(script)`, once per session across xdist workers."""
    if worker_id == "master":  # no xdist
        return run_script(script, x64=x64)
    root = tmp_path_factory.getbasetemp().parent
    digest = hashlib.sha1((HLO_TOOLS + script + str(x64)).encode()).hexdigest()[:12]
    cache = root / f"scaleout_{digest}.json"
    with open(str(cache) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cache.is_file():
            return json.loads(cache.read_text())
        data = run_script(script, x64=x64)
        cache.write_text(json.dumps(data))
        return data


def size(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
