"""The HTML report of a reproduction directory (SPEC §6, ``muonlab report DIR``)."""

from muonlab.report.figures import NothingToPlot, error_curves, save_figure, steps_table
from muonlab.report.html import build_report

__all__ = ["NothingToPlot", "build_report", "error_curves", "save_figure", "steps_table"]
