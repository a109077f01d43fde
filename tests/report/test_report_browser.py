"""The report as a reader sees it: rendered by headless Chromium at 1400 px (Playwright
driving the system's Chromium, never a downloaded one).

Checked on a small reproduction (two sweeps, one with a 24-group long-form table, one
failing claim): the verdicts come before the first figure; no table shows more than
20 rows outside a folded ``<details>``; every figure loaded; the failing claim is in view
at the top; and ``--single-file`` writes one page with no external asset that renders
from ``file://`` with its figures.

Where Chromium or Playwright is missing the test skips and says why, except under CI
(``CI`` set), where it fails: ``.ci/run`` installs Debian's chromium and the ``test``
extra installs playwright.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from muonlab.claims.base import Outcome, decide
from muonlab.cli import app
from muonlab.config import ExperimentConfig
from muonlab.engine.experiment import run
from muonlab.report import build_report

WIDTH = 1400
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the headless-browser report test (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    exe = _chromium_path()
    if exe is None:
        _unavailable("no Chromium (/usr/bin/chromium, chromium or chromium-browser): apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install playwright; the 'test' extra has it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _sweep(name: str, kappas: list[float], optimizers: list[dict]) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "name": name, "problem": {"kind": "symmetric_mf", "n": 8, "r": 2}, "optimizer": optimizers[0],
        "steps": 40, "seeds": 2, "log_every": 5, "metrics": ["loss", "rel_err"],
        "grid": {"problem.kappa": kappas, "optimizer": optimizers},
    })


@pytest.fixture(scope="module")
def repro(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    # 6 κ × 4 optimizer variants = 24 groups: a long-form table longer than 20 rows.
    wide = [{"name": "muon", "lr": 0.05}, {"name": "muon", "lr": 0.1}, {"name": "gd", "lr": 0.3},
            {"name": "gd", "lr": 0.1}]
    run(_sweep("exp_wide", [1, 3, 10, 30, 100, 300], wide), root / "exp_wide")
    run(_sweep("exp_small", [1, 100], wide[1:3]), root / "exp_small")
    outcomes = [Outcome(str(i), True) for i in range(5)]
    claims = [decide("wide_holds", "001", "Muon's steps: 40 (need <= 50).", outcomes).with_experiment("exp_wide"),
              decide("small_fails", "002", "GD's error 0.3 (need <= 0.01).",
                     [*outcomes[:3], Outcome("3", False, "0.3"), Outcome("4", False, "0.2")]
                     ).with_experiment("exp_small"),
              decide("beyond_holds", "beyond", "A question of ours.", outcomes).with_experiment("exp_small")]
    (root / "claims.json").write_text(json.dumps([c.with_scale("quick").to_dict() for c in claims]),
                                      encoding="utf-8")
    return root


_LAYOUT_JS = """() => {
  const shown = el => el.getClientRects().length > 0;
  const top = el => el.getBoundingClientRect().top + window.scrollY;
  const claims = document.querySelector('table.claims');
  const firstFigure = document.querySelector('figure');
  const tables = [...document.querySelectorAll('table')].filter(shown).map(t => ({
    cls: t.className, inClosedDetails: !!t.closest('details:not([open])'),
    rows: [...t.querySelectorAll('tbody tr')].filter(shown).length}));
  const imgs = [...document.querySelectorAll('img')].map(i => ({src: i.src.slice(0, 40),
    ok: i.complete && i.naturalWidth > 0, width: i.getBoundingClientRect().width}));
  const failing = document.querySelector('#failing');
  return {claimsTop: claims ? top(claims) : null, figureTop: firstFigure ? top(firstFigure) : null,
          claimsBeforeFigure: !!(claims && firstFigure &&
              (claims.compareDocumentPosition(firstFigure) & Node.DOCUMENT_POSITION_FOLLOWING)),
          tables, imgs, failingTop: failing ? top(failing) : null,
          bodyWidth: document.documentElement.scrollWidth,
          details: [...document.querySelectorAll('details.long-form')].map(d => d.open)};
}"""


def _layout(browser, url: str, shot: Path | None = None) -> dict:
    page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
    try:
        page.goto(url, wait_until="load")
        layout = page.evaluate(_LAYOUT_JS)
        if shot is not None:
            page.screenshot(path=str(shot))
    finally:
        page.close()
    return layout


def _check_layout(layout: dict) -> None:
    assert layout["claimsTop"] is not None and layout["figureTop"] is not None, layout
    assert layout["claimsBeforeFigure"] and layout["claimsTop"] < layout["figureTop"]
    assert layout["failingTop"] is not None and layout["failingTop"] < 1000  # the failing claim is in view
    long = [t for t in layout["tables"] if t["rows"] > 20 and not t["inClosedDetails"]]
    assert not long, long
    assert any(t["rows"] == 24 and t["inClosedDetails"] for t in layout["tables"])  # folded, not dropped
    assert layout["details"] and not any(layout["details"])  # every long-form table starts folded
    assert layout["imgs"] and all(i["ok"] for i in layout["imgs"]), layout["imgs"]
    assert all(0 < i["width"] <= WIDTH for i in layout["imgs"])
    assert layout["bodyWidth"] <= WIDTH  # nothing forces a horizontal scroll


def test_report_reads_top_down_in_chromium(browser, repro, tmp_path):
    index = build_report(repro)
    shot = tmp_path / "top.png"
    layout = _layout(browser, index.resolve().as_uri(), shot)
    _check_layout(layout)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # --single-file: one page, no external asset, the same layout from file://
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["report", str(repro), "--single-file"])
    assert result.exit_code == 0, result.output
    single = repro / "report.html"
    assert single.is_file()
    text = single.read_text(encoding="utf-8")
    _assert_self_contained(text)
    moved = tmp_path / "elsewhere" / "shared.html"  # opens alone, away from the reproduction
    moved.parent.mkdir()
    shutil.copy(single, moved)
    layout = _layout(browser, moved.resolve().as_uri())
    _check_layout(layout)
    assert all(i["src"].startswith("data:image/png;base64,") for i in layout["imgs"])


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href", "data", "poster", "srcset") and v is not None:
                self.refs.append((tag, k, v))


def _assert_self_contained(text: str) -> None:
    parser = _Refs()
    parser.feed(text)
    assert parser.refs, "no links at all"
    for tag, attr, value in parser.refs:
        assert value.startswith(("data:", "#")), (tag, attr, value[:80])
    assert not re.search(r"url\((?!['\"]?data:)", text), "a CSS url() to an external file"
    assert "@import" not in text
