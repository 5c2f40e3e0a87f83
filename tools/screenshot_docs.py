"""Build the documentation site, serve it on localhost and screenshot three pages in headless
Chromium: the home page, the `riemannian_adam` reference and a rendered notebook.

    python tools/screenshot_docs.py            # writes docs/screenshots/*.png

Needs the `docs` extra, `playwright` (the Python package only: it drives the system browser,
no browser download) and Debian's `chromium` (`apt-get install chromium`). The screenshots
are for a person to look at: maths typeset by MathJax, highlighted code, plots present.
"""

import argparse
import functools
import http.server
import shutil
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = {
    "home": "",
    "riemannian_adam": "api/optim/#structjax.optim.riemannian_adam",
    "notebook_symplectic_integrators": "notebooks/01_symplectic_integrators/",
}


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("no chromium on PATH: `apt-get update && apt-get install chromium`")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--no-build", action="store_true", help="reuse site/ as it is")
    ns = parser.parse_args(argv)
    browser = _chromium()
    if not ns.no_build:
        subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "-q"], cwd=ROOT, check=True
        )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # no line per request
            pass

    handler = functools.partial(Quiet, directory=str(ROOT / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as pw:
            chrome = pw.chromium.launch(executable_path=browser, args=["--no-sandbox"])
            tab = chrome.new_page(viewport={"width": 1280, "height": 1400})
            for name, page in PAGES.items():
                path = out / f"{name}.png"
                tab.goto(base + page, wait_until="networkidle")
                # MathJax typesets after load: wait until it has, then let the page settle.
                tab.wait_for_function(
                    "() => !window.MathJax || (MathJax.startup && MathJax.startup.promise)"
                )
                tab.evaluate("() => window.MathJax && MathJax.startup.promise")
                if "#" in page:
                    tab.evaluate(
                        "id => document.getElementById(id).scrollIntoView()", page.split("#")[1]
                    )
                elif "notebooks/" in page:  # the first plot, with the text above it
                    tab.evaluate(
                        "() => document.querySelector('img[src^=\"data:image\"]')"
                        ".scrollIntoView({block: 'end'})"
                    )
                tab.wait_for_timeout(500)
                tab.screenshot(path=str(path))
                print(f"{base + page} -> {path.relative_to(ROOT)}")
            chrome.close()
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
