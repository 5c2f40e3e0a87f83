"""The public API's documentation: every public name carries a docstring in the house style
(diffrax's ``**Arguments:**`` / ``**Returns:**`` sections and an executed ``**Example:**``),
a typed signature, and its examples run here, so none can rot."""

import doctest
import importlib
import inspect

import pytest

SUBPACKAGES = (
    "structjax.integrators",
    "structjax.manifolds",
    "structjax.optim",
    "structjax.nn",
    "structjax.equivariant",
    "structjax.check",
    "structjax.problems",
    "structjax.benchmark",
)


def _public():
    """(dotted name, object) for every name a subpackage exports, once each."""
    seen, out = set(), []
    for modname in SUBPACKAGES:
        module = importlib.import_module(modname)
        for name in sorted(vars(module)):
            obj = getattr(module, name)
            if name.startswith("_") or inspect.ismodule(obj) or id(obj) in seen:
                continue
            if not (inspect.isclass(obj) or callable(obj)):
                continue
            if not getattr(obj, "__module__", "").startswith("structjax"):
                continue
            seen.add(id(obj))
            out.append((f"{modname}.{name}", obj))
    return out


PUBLIC = _public()
IDS = [name for name, _ in PUBLIC]


def _own_methods(cls):
    """Public methods and properties a structjax class defines itself."""
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if isinstance(member, property):
            member = member.fget
        if inspect.isfunction(member) and member.__module__.startswith("structjax"):
            yield name, member


def _takes_arguments(obj) -> bool:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return False
    return any(p.name != "self" for p in sig.parameters.values())


def _unannotated(func) -> list[str]:
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return []
    missing = [
        p.name
        for p in sig.parameters.values()
        if p.name not in ("self", "cls")
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and p.annotation is p.empty
    ]
    if not inspect.isclass(func) and func.__name__ != "__init__":
        if sig.return_annotation is sig.empty:
            missing.append("return")
    return missing


def style_problems(obj) -> list[str]:
    """What the house style asks of a public name and this one lacks."""
    doc = inspect.getdoc(obj) or ""
    problems = []
    if not doc.strip():
        return ["no docstring"]
    if _takes_arguments(obj) and "**Arguments:**" not in doc:
        problems.append("no **Arguments:** section")
    if not inspect.isclass(obj) and "**Returns:**" not in doc:
        problems.append("no **Returns:** section")
    if "**Example:**" not in doc or ">>>" not in doc:
        problems.append("no executed **Example:**")
    if inspect.isclass(obj):
        for name, method in _own_methods(obj):
            if not (inspect.getdoc(getattr(obj, name, method)) or "").strip():
                problems.append(f"method {name} has no docstring")
    return problems


def type_problems(obj) -> list[str]:
    if inspect.isclass(obj):
        init = obj.__dict__.get("__init__")
        targets = [("__init__", init)] if init is not None and inspect.isfunction(init) else []
        targets += list(_own_methods(obj))
    else:
        targets = [(obj.__name__, obj)]
    return [f"{name}: {arg}" for name, f in targets for arg in _unannotated(f)]


@pytest.mark.parametrize("name,obj", PUBLIC, ids=IDS)
def test_docstring_style(name, obj):
    problems = style_problems(obj)
    assert not problems, f"{name}: {'; '.join(problems)}"


@pytest.mark.parametrize("name,obj", PUBLIC, ids=IDS)
def test_typed_signature(name, obj):
    problems = type_problems(obj)
    assert not problems, f"{name} lacks annotations on: {', '.join(problems)}"


@pytest.mark.parametrize("name,obj", PUBLIC, ids=IDS)
def test_examples_run(name, obj):
    module = inspect.getmodule(obj)
    tests = [t for t in doctest.DocTestFinder().find(obj, name, module=module) if t.examples]
    if not tests:
        pytest.skip(f"{name} has no example (test_docstring_style fails for it)")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = []
    for test in tests:
        runner.run(test, out=out.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(out)


def test_api_reference_lists_every_public_name():
    """docs/api/<subpackage>.md renders every public name (a `::: dotted.name` directive), and
    names nothing that is not public: `mkdocs build --strict` then fails on a broken one."""
    import pathlib
    import re

    api = pathlib.Path(__file__).parents[1] / "docs" / "api"
    listed = set()
    for page in api.glob("*.md"):
        listed |= set(re.findall(r"^::: ([\w.]+)$", page.read_text(), re.M))
    public = set(IDS)
    assert public <= listed, f"not in docs/api: {sorted(public - listed)}"
    assert listed <= public, f"in docs/api but not public: {sorted(listed - public)}"


def test_import_is_lazy():
    """`import structjax` loads no subpackage (nor JAX) until one is used."""
    import subprocess
    import sys

    code = (
        "import sys, structjax; assert 'jax' not in sys.modules, 'jax loaded';"
        "assert structjax.manifolds.Sphere(3).point_shape == (3,); print(sorted(dir(structjax)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in ("benchmark", "check", "equivariant", "integrators", "manifolds", "nn", "optim",
                 "problems"):
        assert f"'{name}'" in out.stdout
