"""Drive JupyterLab and the exported HTML in a real (headless) Chromium, as a user would (issue 25).

Not part of `make test` or `make bench` (its name does not start with `bench_`): it needs Chromium and
Playwright, which the project does not install. On Debian::

    apt-get install -y chromium
    python -m venv /tmp/pw && /tmp/pw/bin/pip install playwright
    .venv/bin/jupyter lab --no-browser --port 8899 --ServerApp.token='' --ServerApp.root_dir=DIR &
    /tmp/pw/bin/python benchmarks/browser_check.py run 00_quickstart.ipynb shots/00      # Run All, screenshots
    /tmp/pw/bin/python benchmarks/browser_check.py widget 09_phsa.ipynb shots/09         # (interactive=True in DIR's copy)
    /tmp/pw/bin/python benchmarks/browser_check.py html outputs/11_token_atlas/11_token_atlas.html shots/11

`run` opens the notebook (a path under the lab's root), runs every cell from the Run menu, waits until no cell
is queued, and prints the stderr outputs that hold a traceback, the widget views and images shown, and saves
screenshots at four depths. `widget` also changes the first dropdown of the first widget output and says
whether the output's pixels changed. `html` opens an exported page from disk and prints its images (and how
many did not load), every request it made off the disk, warning / traceback lines and unfinished progress
bars, with three screenshots.
"""

from __future__ import annotations

import hashlib
import sys
import time

LAB = "http://127.0.0.1:8899/lab/tree/"
QUEUED = ".jp-InputPrompt:has-text('[*]')"


def open_notebook(page, nb: str, run: bool, wait_s: int = 300) -> None:
    page.goto(f"{LAB}{nb}?reset", wait_until="networkidle")  # ?reset: only this notebook is open
    page.wait_for_selector(".jp-Notebook >> visible=true", timeout=60000)
    time.sleep(4)
    if run:
        page.keyboard.press("Escape")
        page.click("text=Run", timeout=10000)
        page.click("text=Run All Cells", timeout=10000)
        start = time.time()
        time.sleep(8)
        while page.locator(QUEUED).count() and time.time() - start < wait_s:
            time.sleep(2)
        print(f"ran {time.time() - start:.0f} s; cells still queued: {page.locator(QUEUED).count()}")


def check_run(page, nb: str, out: str) -> None:
    open_notebook(page, nb, run=True)
    errs = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    print("stderr outputs:", len(errs), "with a traceback:", sum("Traceback" in e for e in errs))
    print("widget views:", page.locator(".jp-OutputArea-output .jupyter-widgets").count(),
          "images:", page.locator(".jp-OutputArea-output img").count())
    cells = page.locator(".jp-Cell")
    for i, frac in enumerate((0.0, 0.33, 0.66, 0.95)):
        cells.nth(min(cells.count() - 1, int(cells.count() * frac))).scroll_into_view_if_needed()
        time.sleep(1)
        page.screenshot(path=f"{out}_{i}.png")


def check_widget(page, nb: str, out: str) -> None:
    open_notebook(page, nb, run=True)
    select = page.locator(".jp-OutputArea-output select").first
    box = select.locator("xpath=ancestor::div[contains(@class,'jp-OutputArea-output')]")
    box.scroll_into_view_if_needed()
    time.sleep(1)
    before = hashlib.md5(box.screenshot(path=f"{out}_before.png")).hexdigest()
    options, value = select.locator("option").all_inner_texts(), select.input_value()
    choice = next(o for o in options if o != value)
    select.select_option(label=choice)
    time.sleep(4)
    after = hashlib.md5(box.screenshot(path=f"{out}_after.png")).hexdigest()
    print(f"dropdown {value!r} -> {choice!r} (of {options}): output changed {before != after}")


def check_html(page, path: str, out: str) -> None:
    off_disk = []
    page.on("request", lambda r: off_disk.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
    page.goto("file://" + path, wait_until="load")
    time.sleep(2)
    imgs = page.locator("img")
    broken = sum(imgs.nth(i).evaluate("e => e.naturalWidth") == 0 for i in range(imgs.count()))
    lines = page.inner_text("body").splitlines()
    print("images", imgs.count(), "not loaded", broken, "requests off the disk", off_disk[:5])
    print("warning / traceback lines:", [x for x in lines if "Warning" in x or "Traceback" in x][:5])
    print("unfinished progress bars:", [x for x in lines if "%|" in x and "100%|" not in x][:5])
    height = page.evaluate("document.body.scrollHeight")
    for i, frac in enumerate((0.0, 0.4, 0.75)):
        page.evaluate(f"window.scrollTo(0, {int(height * frac)})")
        time.sleep(0.5)
        page.screenshot(path=f"{out}_{i}.png")


def main() -> None:
    from playwright.sync_api import sync_playwright

    if len(sys.argv) != 4 or sys.argv[1] not in ("run", "widget", "html"):
        raise SystemExit("usage: browser_check.py run|widget|html NOTEBOOK_OR_HTML OUT_PREFIX")
    mode, target, out = sys.argv[1:]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        {"run": check_run, "widget": check_widget, "html": check_html}[mode](page, target, out)
        browser.close()


if __name__ == "__main__":
    main()
