"""Templates and the filters they use: times, durations and counts, always escaped."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: What a missing value shows (an en dash).
NONE = "\u2013"
TEMPLATES = Path(__file__).parent / "templates"


def utc_text(epoch: float) -> str:
    """``2026-01-02 03:04:05 UTC``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def when(epoch: float | None) -> Any:
    """A ``<time>`` element: UTC in the markup, the viewer's zone once the script ran, the
    UTC value on hover."""
    from markupsafe import Markup, escape

    if epoch is None:
        return Markup("&ndash;")
    iso = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
    text = escape(utc_text(epoch))
    return Markup(
        f'<time datetime="{escape(iso)}" title="{text}" data-ts="{float(epoch):.3f}">{text}</time>'
    )


def seconds(value: float | None) -> str:
    """A duration in words: ``850 ms``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if value is None:
        return NONE
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{int(value // 60)} min {int(value % 60):02d} s"
    if value < 172800:
        return f"{int(value // 3600)} h {int(value % 3600 // 60):02d} min"
    return f"{value / 86400:.0f} days"


def count(value: int | None) -> str:
    """A count with thousands separators."""
    return NONE if value is None else f"{value:,}"


def environment() -> Any:
    """The Jinja environment: every value escaped unless a filter marks it safe."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(when=when, seconds=seconds, count=count)
    return env
