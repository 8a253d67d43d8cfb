"""Figures, the printed table and the JSON file.

A figure is one measured quantity beside the baseline it is judged against.
The table and the JSON are two renderings of the same list of figures.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench._stats import median, p99

COLUMNS = ("figure", "median", "p99", "baseline", "ratio", "target", "met?")


@dataclass
class Figure:
    """One row: a measurement, its baseline and its target (if the issue sets one)."""

    id: str
    label: str
    unit: str
    median: float | None = None
    p99: float | None = None
    n: int = 0
    baseline: float | None = None
    baseline_label: str = ""
    target_ratio: float | None = None  # met when median / baseline <= this
    target_max: float | None = None  # met when median <= this, in `unit`
    skipped: str = ""  # why it was not measured
    # Median of per-round ratios, when samples come in pairs measured side by
    # side: steadier than the ratio of the two medians.
    paired_ratio: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.paired_ratio is not None:
            return self.paired_ratio
        if self.median is None or not self.baseline:
            return None
        return self.median / self.baseline

    @property
    def met(self) -> bool | None:
        ratio = self.ratio
        if self.target_ratio is not None and ratio is not None:
            return ratio <= self.target_ratio
        if self.target_max is not None and self.median is not None:
            return self.median <= self.target_max
        return None

    @property
    def target(self) -> str:
        if self.target_ratio is not None:
            return f"<= {self.target_ratio:g}x"
        if self.target_max is not None:
            return f"< {self.target_max:g} {self.unit}"
        return ""

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "met": self.met, "target": self.target}


def timing(
    id: str,
    label: str,
    samples: Sequence[float],
    *,
    baseline: float | None = None,
    baseline_label: str = "",
    target_ratio: float | None = None,
    target_max: float | None = None,
    paired_ratio: float | None = None,
) -> Figure:
    """A latency figure from samples in seconds, reported in milliseconds."""
    return Figure(
        id=id,
        label=label,
        unit="ms",
        median=median(samples) * 1e3,
        p99=p99(samples) * 1e3,
        n=len(samples),
        baseline=None if baseline is None else baseline * 1e3,
        baseline_label=baseline_label,
        target_ratio=target_ratio,
        target_max=target_max,
        paired_ratio=paired_ratio,
    )


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _row(figure: Figure) -> tuple[str, ...]:
    if figure.skipped:
        return (figure.label, "skipped", "-", "-", "-", figure.target, "-")
    baseline = "-"
    if figure.baseline is not None:
        baseline = f"{_number(figure.baseline)} {figure.unit} {figure.baseline_label}"
    met = {True: "yes", False: "NO", None: "-"}[figure.met]
    ratio = "-" if figure.ratio is None else f"{figure.ratio:.2f}x"
    if figure.paired_ratio is not None:
        ratio += "*"
    value_unit = f" {figure.unit}"
    p99_text = "-" if figure.p99 is None else _number(figure.p99) + value_unit
    return (
        figure.label,
        _number(figure.median) + value_unit,
        p99_text,
        baseline,
        ratio,
        figure.target,
        met,
    )


def render_table(figures: Sequence[Figure]) -> str:
    """The table, left-aligned text columns; skip reasons as notes below it."""
    rows = [COLUMNS, *(_row(f) for f in figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if any(f.paired_ratio is not None for f in figures):
        lines.append("* median of per-round ratios (conditions alternated in one process)")
    lines += [f"skipped: {f.label}: {f.skipped}" for f in figures if f.skipped]
    return "\n".join(lines)


def write_json(path: Path, figures: Sequence[Figure], meta: dict[str, Any]) -> None:
    document = {**meta, "figures": [f.as_json() for f in figures]}
    path.write_text(json.dumps(document, indent=2) + "\n")
