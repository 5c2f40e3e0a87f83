"""mkdocs hook: the measured figures page reads its tables from the benchmark results.

A line `{{ floors: <suite> }}` becomes the table of that suite's floors, read from
`benchmarks/results/<suite>.json` at build time (so the page shows what the last full run
measured, never numbers copied by hand), and `{{ machine: <suite> }}` the line saying where
and when it ran."""

import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
_PATTERN = re.compile(r"\{\{\s*(floors|machine)\s*:\s*([\w/]+)\s*\}\}")


def _load(suite: str) -> dict:
    path = RESULTS / f"{suite}.json"
    if not path.exists():
        raise FileNotFoundError(f"docs/figures.md asks for {path}, which does not exist")
    return json.loads(path.read_text())


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _floors(suite: str) -> str:
    rows = ["| floor | measured | threshold | met | detail |", "|---|---|---|---|---|"]
    for f in _load(suite).get("floors", []):
        measured = "n/a" if f["measured"] is None else f"{f['measured']:.3g}"
        met = "yes" if f["passed"] else "**no**"
        rows.append(
            f"| {_cell(f['name'])} | {measured} | ≤ {f['threshold']:.3g} | {met} "
            f"| {_cell(f.get('detail', ''))} |"
        )
    return "\n".join(rows)


def _machine(suite: str) -> str:
    m = _load(suite).get("machine", {})
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if v)
    commit = (m.get("structjax_commit") or "")[:10]
    return (
        f"*Run on {m.get('date', '?')[:10]}, {m.get('cpu_count', '?')} CPU cores "
        f"({m.get('jax_backend', '?')}), {versions}; structjax commit `{commit}`.*"
    )


def on_page_markdown(markdown: str, page, config, files) -> str:
    def sub(match: re.Match) -> str:
        kind, suite = match.group(1), match.group(2)
        return _floors(suite) if kind == "floors" else _machine(suite)

    return _PATTERN.sub(sub, markdown)
