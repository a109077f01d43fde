"""The report's reading order and its pieces, without a browser: the claims' statements,
thresholds, measured values and findings (``claim_text``), the headline pivot
(``pivot``), the seed grouping and row folding, the provenance footers and the
single-file page (tests/report/test_report_browser.py renders the page in Chromium)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from muonlab import provenance
from muonlab.claims.base import Outcome, decide
from muonlab.config import ExperimentConfig
from muonlab.engine.experiment import run
from muonlab.report import build_report, claim_text
from muonlab.report.html import MAX_VISIBLE_ROWS, ClaimRow, _seed_groups
from muonlab.report.pivot import pivot

from helpers import tiny_sweep

# ----------------------------------------------------------------------------- claim text


def test_statement_is_the_docstrings_first_sentence_or_an_explicit_one():
    s = claim_text.statement({"name": "muon_kappa_free"})
    assert s is not None and s.startswith("Theorem 1") and s.endswith("need > 0.5).")
    hard = claim_text.statement({"name": "signgd_hard_instance"})
    assert hard is not None and "App. C)" in hard  # "App." does not end the sentence
    assert len(claim_text.statement({"name": "rank_insensitive"}) or "") <= claim_text.STATEMENT_CHARS + 2
    assert claim_text.statement({"name": "muon_kappa_free", "statement": "Muon is κ-free."}) == "Muon is κ-free."
    assert claim_text.statement({"name": "no_such_claim"}) is None


def test_thresholds_and_measured_from_a_detail():
    detail = ("Final balance (need ≤ 0.01 at the smallest α): gd 1.5e-09, muon 2.8e-05; Muon |κ-slope| < 0.1, "
              "56 > 1.5. [0] seed 0: 1.5e-09 [1] seed 1: 2e-09. 5/5 seeds hold (95% CI [0.48, 1.00]; need all).")
    assert claim_text.thresholds(detail) == ["need ≤ 0.01 at the smallest α", "Muon |κ-slope| < 0.1"]
    measured = claim_text.measured(detail)
    assert measured is not None and measured.endswith("56 > 1.5.") and "[0]" not in measured
    counted = claim_text.measured("Aligned after 2 steps in every seed. 3/5 seeds hold (95% CI [0.15, 0.95]).")
    assert counted == "Aligned after 2 steps in every seed."
    assert claim_text.measured(None) is None and claim_text.measured("  ") is None
    long = claim_text.measured("word " * 200)
    assert long is not None and len(long) <= claim_text.MEASURED_CHARS + 2 and long.endswith("…")


FINDINGS = """# Findings

## F1. A first finding about `exp_a` (2026-01-01)

**Observation.** The first paragraph, with `code`.

| a table | is skipped |

## F2. Unrelated (2026-01-02)

Text naming `other_claim`.

## Not a finding
"""


def test_findings_parsed_and_matched_to_claims(tmp_path):
    (tmp_path / "findings.md").write_text(FINDINGS, encoding="utf-8")
    found, path = claim_text.load_findings(tmp_path)
    assert path == tmp_path / "findings.md"
    assert [(f.id, f.title) for f in found] == [("F1", "A first finding about `exp_a` (2026-01-01)"),
                                              ("F2", "Unrelated (2026-01-02)")]
    assert found[0].summary == "Observation. The first paragraph, with code."
    claim = {"name": "c", "experiment": "exp_a", "detail": "x FAIL (see docs/findings.md F9)."}
    assert claim_text.findings_for(claim, found) == ["F9", "F1"]  # cited first, even without its text
    assert claim_text.findings_for({"name": "other_claim"}, found) == ["F2"]
    assert claim_text.findings_for({"name": "c", "detail": "F1 without the file's name"}, found) == []


# ----------------------------------------------------------------------------- pivot


def _runs(rows):
    df = pd.DataFrame(rows)
    df["stop.target"] = 1e-8
    for c in ("steps_to_1e-4", "steps_to_1e-8", "steps_to_1e-12"):
        df[c] = df.get(c, pd.Series([None] * len(df))).astype("Float64")
    df["status"] = "ok"
    return df


def test_pivot_is_median_min_max_over_seeds_with_reached_counts():
    rows = []
    for opt, kappa, steps in (("muon", 1.0, [10, 12, 30]), ("muon", 100.0, [11, None, 13]),
                              ("gd", 1.0, [5, 6, 7]), ("gd", 100.0, [None, None, 400])):
        for seed, s in enumerate(steps):
            rows.append({"optimizer.name": opt, "problem.kappa": kappa, "seed": seed, "steps_to_1e-8": s})
    p = pivot(_runs(rows), {"panel_by": "optimizer.name", "curve_by": ["problem.kappa"]})
    assert p is not None and p.axis == "problem.kappa" and p.quantity == "steps to 1e-8"
    table = p.table.set_index("optimizer")
    assert list(table.columns) == ["κ = 1", "κ = 10²"]
    assert table.loc["Muon", "κ = 1"] == "12 [10–30]"
    assert table.loc["Muon", "κ = 10²"] == "13 [11–∞] (2/3)"
    assert table.loc["GD", "κ = 1"] == "6 [5–7]"
    assert table.loc["GD", "κ = 10²"] == "— (1/3)"  # the median run never got there


def test_pivot_falls_back_to_the_final_error_and_to_none():
    rows = [{"optimizer.name": "muon", "problem.alpha": a, "seed": s, "final_rel_err": 10.0 ** -(s + a)}
            for a in (1, 4) for s in range(3)]
    p = pivot(_runs(rows), {"panel_by": "optimizer.name", "curve_by": ["problem.alpha"]})
    assert p is not None and p.quantity == "final relative error"
    assert p.table.iloc[0]["α = 1"] == "0.01 [0.001–0.1]"
    failed = _runs(rows).assign(status="failed")
    assert pivot(failed, {"panel_by": "optimizer.name", "curve_by": ["problem.alpha"]}) is None


# ----------------------------------------------------------------------------- grouping


def _row(name: str, seed: str, passed: bool = True) -> ClaimRow:
    return ClaimRow(name=name, seed=seed, passed=passed, detail="", where=None, anchor=None)


def test_seed_groups_order_and_folding():
    rows = [_row("b", "beyond"), _row("x", "002"), _row("y", "000"), _row("z", "weird"), _row("n", "")]
    rows += [_row(f"p{i}", "001", passed=i not in (3, 24)) for i in range(25)]
    groups = _seed_groups(rows)
    assert [g.seed for g in groups] == ["000", "001", "002", "weird", "", "beyond"]
    assert groups[-1].title.startswith("Beyond the papers")
    g001 = groups[1]
    assert len(g001.rows) == MAX_VISIBLE_ROWS and g001.n_total == 25 and g001.n_pass == 23
    shown = [r.name for r in g001.rows]
    assert "p3" in shown and "p24" in shown  # every failing claim in view
    assert shown == sorted(shown, key=lambda n: int(n[1:]))  # in claims.json's order
    assert [r.name for r in g001.folded] == ["p19", "p20", "p21", "p22", "p23"] and all(r.passed for r in g001.folded)


# ----------------------------------------------------------------------------- the page


@pytest.fixture(scope="module")
def repro(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("layout")
    cfg = tiny_sweep("exp_t")
    cfg["grid"] = {"problem.kappa": [1.0, 10.0], "optimizer": [{"name": "gd", "lr": 0.2}, {"name": "muon", "lr": 0.05}]}
    run(ExperimentConfig.model_validate(cfg), root / "exp_t", overrides=["steps=30"])
    provenance.write(root / "exp_t", {**provenance.record(wall_s=12.5), "git_commit": "abc123def456"})
    claims = [decide("t_fails", "002", "Error 0.3 (need ≤ 0.01).", [Outcome("0", True), Outcome("1", False, "0.3")]),
              decide("t_holds", "beyond", "Steps 30 (need ≤ 50).", [Outcome("0", True), Outcome("1", True)])]
    (root / "claims.json").write_text(json.dumps([c.with_experiment("exp_t").with_scale("custom").to_dict()
                                                  for c in claims]), encoding="utf-8")
    (root / "experiments.json").write_text(json.dumps([{"name": "exp_t", "title": "Tiny", "scale": "custom",
                                                        "overrides": ["steps=30"], "config_hash": "h4sh"}]),
                                           encoding="utf-8")
    (root / "findings.md").write_text("# F\n\n## F7. Why `t_fails` fails (2026)\n\nBecause.\n", encoding="utf-8")
    return root


def test_page_order_verdicts_then_figures_then_folded_tables(repro):
    text = build_report(repro).read_text(encoding="utf-8")
    order = [text.index(m) for m in ('id="claims-summary"', 'id="failing"', '<table class="claims"',
                                     'id="findings"', "<figure", '<table class="pivot"',
                                     '<details class="table-fold long-form"', '<table class="steps"',
                                     'id="provenance"')]
    assert order == sorted(order)
    assert text.index("Seed 002") < text.index("Beyond the papers")
    failing = text[text.index('id="failing"'):text.index('id="verdicts"')]
    assert "t_fails" in failing and "F7" in failing and "Why <code>" not in failing and "t_holds" not in failing
    assert 'href="exp_t_steps.csv"' in text and (repro / "report" / "exp_t_steps.csv").is_file()
    csv = pd.read_csv(repro / "report" / "exp_t_steps.csv")
    assert len(csv) == 4 and {"runs", "ok", "steps_to_1e-4"} <= set(csv.columns)
    assert re.search(r'<a class="svg-link" href="exp_t\.svg"[^>]*><img src="exp_t\.png"', text)
    assert 'class="cibar"' in text and "need ≤ 0.01" in text


def test_provenance_footers(repro):
    text = build_report(repro).read_text(encoding="utf-8")
    section = text[text.index('<section id="exp_t"'):text.index("</section>")]
    footer = section[section.index('<footer class="provenance">'):]
    for piece in ("<dt>muonlab</dt>", "(commit abc123def456)", "<dt>config hash</dt><dd>h4sh</dd>",
                  "<dd>steps=30</dd>", "<dt>scale</dt><dd>custom</dd>", "<dt>seeds</dt><dd>0, 1 (2 seeds)</dd>",
                  "<dt>machine</dt>", "<dt>torch</dt>", "12.5 s (this reproduction)"):
        assert piece in footer, piece
    report_footer = text[text.index('id="provenance"'):]
    assert "<dt>machine</dt>" in report_footer and "12.5 s over 1 experiment<" in report_footer


def test_single_file_has_everything_inline(repro):
    out = build_report(repro, single_file=True)
    assert out == repro / "report.html"
    text = out.read_text(encoding="utf-8")
    refs = re.findall(r'\s(?:src|href)="([^"]*)"', text)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), [r[:60] for r in refs if r[:5] != "data:"]
    assert text.count("data:image/png;base64,") == text.count("<img ")
    assert "data:image/svg+xml;base64," in text and "data:text/csv;base64," in text
    assert "single file" in text


def test_bar_is_drawn_only_for_a_valid_interval():
    from muonlab.report.html import _bar

    b = _bar({"ci_low": 0.48, "ci_high": 1.0, "n_pass": 5, "n_total": 5, "required": 1.0})
    assert b is not None and (b.lo, b.hi, b.point, b.required) == (48.0, 100.0, 100.0, None)
    b = _bar({"ci_low": 0.75, "ci_high": 0.999, "n_pass": 19, "n_total": 20, "required": 0.7})
    assert b is not None and b.required == 70.0 and math.isclose(b.point, 95.0)
    for bad in ({}, {"ci_low": None, "ci_high": 1.0, "n_pass": 1, "n_total": 1},
                {"ci_low": 0.9, "ci_high": 0.1, "n_pass": 1, "n_total": 1},
                {"ci_low": 0.1, "ci_high": 0.9, "n_pass": 3, "n_total": 2}):
        assert _bar(bad) is None
