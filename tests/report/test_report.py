"""The HTML report (``muonlab.report``): figures, iterations-to-ε table, claims, rendering."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from muonlab.config import ExperimentConfig
from muonlab.engine.experiment import run
from muonlab.engine.store import EPSILON_COLUMNS, ResultStore
from muonlab.errors import MuonlabError
from muonlab.report import (
    NothingToPlot,
    build_report,
    error_curves,
    save_figure,
    steps_table,
)
from muonlab.report.figures import axis_label, resolve_spec

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _config(name: str, **over) -> ExperimentConfig:
    cfg = {
        "name": name,
        "problem": {"kind": "symmetric_mf", "n": 10, "r": 2},
        "optimizer": {"name": "muon", "lr": 0.5},
        "steps": 150,
        "seeds": 2,
        "grid": {
            "problem.kappa": [1, 100],
            "optimizer": [{"name": "muon", "lr": 0.05}, {"name": "gd", "lr": 0.3}],
        },
        "metrics": ["loss", "rel_err"],
    }
    cfg.update(over)
    return ExperimentConfig.model_validate(cfg)


CLAIMS = [
    {"name": "gd reaches 1e-8 <fast>", "seed": "000", "passed": True, "detail": "steps 66 <= 100"},
    {"name": "muon beats gd & co", "seed": "001", "passed": False, "detail": "ratio 3.2 > 2", "experiment": "exp_a"},
]


@pytest.fixture(scope="module")
def repro_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("repro")
    run(_config("exp_a"), root / "exp_a")
    (root / "claims.json").write_text(json.dumps(CLAIMS), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def report(repro_dir) -> Path:
    return build_report(repro_dir)


class _Page(HTMLParser):
    """Collects sections, images, and the cells of every table (by data-col)."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict[str, str | None]] = []
        self.imgs: list[str] = []
        self.tables: list[dict] = []  # {"attrs", "rows": [ {col: text} ], "row_attrs": [...]}
        self._row: dict | None = None
        self._col: str | None = None
        self._text: list[str] = []
        self.badges: list[tuple[str, str]] = []  # (row's data-claim, badge text)
        self._badge: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.sections.append(a)
        elif tag == "img":
            self.imgs.append(a["src"])
        elif tag == "table":
            self.tables.append({"attrs": a, "rows": [], "row_attrs": []})
        elif tag == "tr" and self.tables:
            self._row = {}
            self.tables[-1]["row_attrs"].append(a)
        elif tag == "td" and self._row is not None:
            self._col, self._text = a.get("data-col", f"_{len(self._row)}"), []
        elif tag == "span" and "badge" in (a.get("class") or ""):
            self._badge = a["class"]

    def handle_data(self, data):
        if self._col is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._row is not None and self._col is not None:
            self._row[self._col] = "".join(self._text).strip()
            self._col = None
        elif tag == "tr" and self._row is not None:
            if self._row:
                self.tables[-1]["rows"].append(self._row)
            else:
                self.tables[-1]["row_attrs"].pop()  # header row
            self._row = None
        elif tag == "span":
            self._badge = None


def _parse(index: Path) -> _Page:
    page = _Page()
    page.feed(index.read_text(encoding="utf-8"))
    page.close()
    return page


def _claims_table(page: _Page) -> dict:
    """The verdicts at the top of the page: one table per paper seed, concatenated."""
    tables = [t for t in page.tables if t["attrs"].get("class") == "claims"]
    assert tables, "no claims table"
    return {"attrs": tables[0]["attrs"], "rows": [r for t in tables for r in t["rows"]],
            "row_attrs": [a for t in tables for a in t["row_attrs"]]}


def _is_png(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > len(PNG_SIGNATURE) and path.read_bytes()[:8] == PNG_SIGNATURE


def _expected_cell(values: pd.Series) -> str:
    reached = pd.to_numeric(values, errors="coerce").dropna()
    if reached.empty:
        return "—"
    med = f"{float(reached.median()):g}"
    return med if len(reached) == len(values) else f"{med} ({len(reached)}/{len(values)})"


# ----------------------------------------------------------------------------- the page


def test_report_structure_images_and_claims(repro_dir, report):
    assert report == repro_dir / "report" / "index.html"
    assert report.is_file()
    page = _parse(report)
    experiments = [d.name for d in repro_dir.iterdir() if (d / "runs.parquet").exists()]
    assert [s.get("data-experiment") for s in page.sections] == sorted(experiments) == ["exp_a"]
    assert page.imgs, "the experiment's figure is missing"
    for src in page.imgs:
        assert not src.startswith(("/", "http:", "https:", "file:")), src  # relative
        png = report.parent / src
        assert _is_png(png), src
        assert png.with_suffix(".svg").is_file()

    claims = _claims_table(page)
    by_name = {attrs["data-claim"]: (attrs, row) for attrs, row in zip(claims["row_attrs"], claims["rows"])}
    assert set(by_name) == {c["name"] for c in CLAIMS}
    good_attrs, good = by_name["gd reaches 1e-8 <fast>"]
    bad_attrs, bad = by_name["muon beats gd & co"]
    assert good["status"] == "PASS" and good_attrs["class"] == "pass"
    assert bad["status"] == "FAIL" and bad_attrs["class"] == "fail"
    text = report.read_text(encoding="utf-8")
    assert "1 / 2</strong> claims passed" in text
    assert "<fast>" not in text and "&lt;fast&gt;" in text  # escaped
    assert "muonlab " in text and "generated" in text


def test_steps_table_matches_runs_parquet(repro_dir, report):
    runs = pd.read_parquet(repro_dir / "exp_a" / "runs.parquet")
    page = _parse(report)
    table = next(t for t in page.tables if t["attrs"].get("class") == "steps")
    assert table["attrs"]["data-experiment"] == "exp_a"
    groups = runs.groupby(["optimizer.name", "problem.kappa"])
    assert len(table["rows"]) == groups.ngroups == 4
    reached_somewhere = False
    for row in table["rows"]:
        g = runs[(runs["optimizer.name"] == row["optimizer.name"])
                 & (runs["problem.kappa"] == float(row["problem.kappa"]))]
        assert int(row["runs"]) == len(g) == 2
        for status in ("ok", "diverged", "failed"):
            assert int(row[status]) == int((g["status"] == status).sum())
        for col in EPSILON_COLUMNS:
            assert row[col] == _expected_cell(g[col]), (row, col)
            reached_somewhere |= row[col] != "—"
    assert reached_somewhere  # GD at κ = 1 converges: the numbers are really checked

    df = steps_table(repro_dir / "exp_a", None)
    gd1 = df[(df["optimizer.name"] == "gd") & (df["problem.kappa"] == 1.0)].iloc[0]
    g = runs[(runs["optimizer.name"] == "gd") & (runs["problem.kappa"] == 1.0)]
    assert gd1["steps_to_1e-4"] == f"{g['steps_to_1e-4'].median():g}"


def test_error_curves_png_and_svg(repro_dir, tmp_path):
    fig = error_curves(repro_dir / "exp_a", {"curve_by": ["problem.kappa"], "panel_by": "optimizer.name"})
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    out = save_figure(fig, tmp_path / "sub" / "f.png")  # creates the folder
    assert out == tmp_path / "sub" / "f.png" and _is_png(out)
    assert (tmp_path / "sub" / "f.svg").read_text(encoding="utf-8").lstrip().startswith(("<?xml", "<svg"))
    assert not list(out.parent.glob(".*tmp-*"))  # atomic writes leave no temporaries
    img = mpimg.imread(out)
    assert img.shape[1] > img.shape[0] > 300  # two panels side by side at 150 dpi
    assert float(np.var(img[..., :3])) > 0


def test_error_curves_with_a_column_only_some_runs_have(tmp_path):
    """Curves keyed by a column that is NaN for some runs (T_β's beta, absent from plain
    SpecGD) are drawn: NaN is never equal to itself, so it must not be a lookup key."""
    cfg = _config("beta", steps=30, seeds=1, grid={
        "problem.kappa": [1, 10],
        "optimizer": [{"name": "specgd", "lr": 0.05}, {"name": "specgd_beta", "lr": 0.05, "beta": 1e-3}]})
    run(cfg, tmp_path / "beta")
    runs = pd.read_parquet(tmp_path / "beta" / "runs.parquet")
    assert runs["optimizer.beta"].isna().sum() == 2  # the plain SpecGD runs
    fig = error_curves(tmp_path / "beta", {"curve_by": ["problem.kappa", "optimizer.beta"], "panel_by": None})
    assert len(fig.axes[0].get_lines()) == 4


def test_inferred_spec_and_labels(repro_dir):
    runs = pd.read_parquet(repro_dir / "exp_a" / "runs.parquet")
    spec = resolve_spec(runs, None, name="exp_a")
    assert spec["panel_by"] == "optimizer.name"
    assert spec["curve_by"] == ["problem.kappa"]  # optimizer.lr varies with the optimizer only
    assert spec["x"] == "step" and spec["y"] == "rel_err"
    assert axis_label("problem.kappa", 100.0) == r"$\kappa = 10^{2}$"
    assert axis_label("problem.kappa", 1.0) == r"$\kappa = 1$"
    assert axis_label("optimizer.name", "muon") == "Muon"


def test_experiments_json_order_titles_and_missing_claims(repro_dir, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(repro_dir / "exp_a", root / "exp_a")
    specs = [
        {"name": "ghost", "title": "Not run yet", "description": "", "x": "step", "y": "rel_err",
         "curve_by": ["problem.kappa"], "panel_by": None},
        {"name": "exp_a", "title": "P1 <kappa> sweep", "description": "GD & Muon over κ",
         "x": "step", "y": "rel_err", "curve_by": ["optimizer.name", "problem.kappa"], "panel_by": None},
    ]
    (root / "experiments.json").write_text(json.dumps(specs), encoding="utf-8")
    index = build_report(root)
    page = _parse(index)
    assert [s["data-experiment"] for s in page.sections] == ["ghost", "exp_a"]
    text = index.read_text(encoding="utf-8")
    assert "P1 &lt;kappa&gt; sweep" in text and "GD &amp; Muon over κ" in text
    assert "No claims yet" in text
    assert "No results store for this experiment yet" in text
    steps = next(t for t in page.tables if t["attrs"].get("class") == "steps")
    assert len(steps["rows"]) == 4 and "optimizer.name" in steps["rows"][0]
    assert all(_is_png(index.parent / s) for s in page.imgs) and len(page.imgs) == 1
    assert not list(index.parent.glob(".*tmp-*"))  # atomic writes leave no temporaries


def test_all_failed_experiment_shows_counts(repro_dir, tmp_path):
    root = tmp_path / "r"
    # exp_a's grid (2 optimizers × 2 κ × 2 seeds), every run stored as failed, no trajectory.
    grid = ["run_id", "experiment", "seed", "optimizer.name", "optimizer.lr", "problem.kappa"]
    failed = pd.read_parquet(repro_dir / "exp_a" / "runs.parquet")[grid]
    ResultStore(root / "exp_bad").append(failed.assign(status="failed", error="solver <boom>").to_dict("records"))
    with pytest.raises(NothingToPlot) as err:
        error_curves(root / "exp_bad", None)
    assert isinstance(err.value, MuonlabError) and isinstance(err.value, ValueError)
    index = build_report(root)
    page = _parse(index)
    assert [s["data-experiment"] for s in page.sections] == ["exp_bad"]
    assert page.imgs == []
    text = index.read_text(encoding="utf-8")
    assert "No figure" in text and "8 failed" in text
    assert "<code>solver &lt;boom&gt;</code> (8 runs)" in text
    steps = next(t for t in page.tables if t["attrs"].get("class") == "steps")
    assert sum(int(r["failed"]) for r in steps["rows"]) == 8
    assert all(r[c] == "—" for r in steps["rows"] for c in EPSILON_COLUMNS)


def test_text_from_the_inputs_is_escaped(repro_dir, tmp_path):
    root = tmp_path / "r"
    shutil.copytree(repro_dir / "exp_a", root / "exp_a")
    evil = "<script>alert(1)</script>"
    specs = [{"name": "exp_a", "title": f"Title {evil}", "description": f"About {evil} & more"},
             {"name": f"ghost{evil}", "title": None}]
    claims = [{"name": f"claim {evil}", "seed": evil, "passed": False, "detail": f"detail {evil}\nline 2",
               "experiment": "exp_a"},
              {"name": "other", "seed": None, "passed": True, "detail": None, "figure": f"fig {evil}"}]
    (root / "experiments.json").write_text(json.dumps(specs), encoding="utf-8")
    (root / "claims.json").write_text(json.dumps(claims), encoding="utf-8")
    index = build_report(root)
    text = index.read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    for escaped in ("Title &lt;script&gt;alert(1)&lt;/script&gt;", "About &lt;script&gt;", "&amp; more",
                    "detail &lt;script&gt;alert(1)&lt;/script&gt;\nline 2", "fig &lt;script&gt;",
                    'data-claim="claim &lt;script&gt;alert(1)&lt;/script&gt;"',
                    'data-experiment="ghost&lt;script&gt;alert(1)&lt;/script&gt;"'):
        assert escaped in text, escaped
    page = _parse(index)
    claims_table = _claims_table(page)
    other = claims_table["rows"][1]
    assert other["seed"] == "" and other["detail"] == ""  # a missing seed or detail prints as nothing, not "None"
    assert other["verdict"] == "—"  # an entry without per-replicate fields: no count, no strip
    assert [s["id"] for s in page.sections] == ["exp_a", "ghost_script_alert_1_script"]


def test_extra_figures_and_their_failures(repro_dir, tmp_path, monkeypatch):
    from muonlab.report import extra_figures

    def fine(store_dir):
        fig = Figure(figsize=(2, 2))
        fig.subplots().plot([0, 1], [1, 0])
        return fig, "a <small> figure"

    def empty(store_dir):
        raise NothingToPlot("nothing <here>")

    monkeypatch.setattr(extra_figures, "EXTRA_FIGURES", {"fine": fine, "empty": empty})
    root = tmp_path / "r"
    shutil.copytree(repro_dir / "exp_a", root / "exp_a")
    spec = {"name": "exp_a", "extra_figures": ["fine", "empty", "nope<i>"]}
    (root / "experiments.json").write_text(json.dumps([spec]), encoding="utf-8")
    index = build_report(root)
    page = _parse(index)
    assert page.imgs == ["exp_a.png", "exp_a_fine.png"]
    assert all(_is_png(index.parent / s) and (index.parent / s).with_suffix(".svg").is_file() for s in page.imgs)
    text = index.read_text(encoding="utf-8")
    assert 'alt="a &lt;small&gt; figure"' in text
    assert '<p class="notice">empty: nothing &lt;here&gt;</p>' in text
    assert '<p class="notice">unknown extra figure nope&lt;i&gt;</p>' in text


def test_report_modules_leave_pyplot_and_the_backend_alone(repro_dir, tmp_path):
    src = Path(__file__).resolve().parents[2] / "src" / "muonlab" / "report"
    for path in src.glob("*.py"):
        code = path.read_text(encoding="utf-8")
        for banned in ("matplotlib.use(", "import matplotlib.pyplot", "from matplotlib import pyplot", "plt."):
            assert banned not in code, (path.name, banned)
    # Drawing and saving a figure must not load pyplot (its global figure list) or pick a backend.
    script = (
        "import sys, matplotlib\n"
        "from matplotlib import rcsetup\n"
        "from muonlab.report import error_curves, save_figure\n"
        "import muonlab.report.extra_figures, muonlab.report.lora_figures\n"
        f"save_figure(error_curves({str(repro_dir / 'exp_a')!r}), {str(tmp_path / 'f.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert matplotlib.rcParams._get('backend') is rcsetup._auto_backend_sentinel\n"
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _is_png(tmp_path / "f.png")


def test_build_report_rejects_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError):
        build_report(tmp_path / "nope")


# ----------------------------------------------------------------------------- browser


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="no Chromium binary (chromium / chromium-browser) on PATH")
def test_renders_in_headless_chromium(report, tmp_path):
    shot = tmp_path / "shot.png"
    cmd = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}", "--window-size=1200,2000", report.resolve().as_uri(),
    ]
    subprocess.run(cmd, check=False, timeout=120, capture_output=True)
    assert _is_png(shot), "chromium wrote no screenshot"
    img = mpimg.imread(shot)
    assert img.shape[0] >= 1000 and img.shape[1] >= 600
    assert float(np.var(img[..., :3])) > 0  # not blank


def test_best_variant_runs_keeps_each_curves_fastest_variant():
    from muonlab.report.figures import best_variant_runs

    rows = []
    for kappa, steps in ((1.0, {0.1: 50, 1.0: 30}), (10.0, {0.1: 80, 1.0: None})):
        for lr, s in steps.items():
            for seed in range(3):
                rows.append({"run_id": f"{kappa}-{lr}-{seed}", "problem.kappa": kappa, "optimizer.name": "signgd",
                             "optimizer.lr": lr, "stop.target": 1e-8, "steps_to_1e-8": s, "steps_to_1e-12": None,
                             "steps_to_1e-4": None})
    runs = pd.DataFrame(rows)
    for c in ("steps_to_1e-8", "steps_to_1e-12", "steps_to_1e-4"):
        runs[c] = runs[c].astype("Int64")
    kept = best_variant_runs(runs, ["optimizer.name", "problem.kappa"], ["optimizer.lr"])
    assert sorted(set(zip(kept["problem.kappa"], kept["optimizer.lr"]))) == [(1.0, 1.0), (10.0, 0.1)]
    assert len(kept) == 6  # every seed of the chosen variant
    assert best_variant_runs(runs, ["problem.kappa"], ["no.such.column"]) is runs
