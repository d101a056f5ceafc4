"""Draw a pipeline's task graph as SVG text, for notebooks: the picture ``status.png`` is.

The layout is :mod:`.layout`'s (the PNG's), in CSS pixels (96 an inch); boxes are coloured by
status as in the PNG, cached ones with a dashed border. Every text is escaped, and each box has
a tooltip (a ``<title>``) with what its node's ``tip`` attribute says. Nothing is measured: the
layout's estimated text widths size the boxes, so drawing thousands of boxes costs little.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Hashable, Mapping

from ..dag import GraphLike
from ..status import Status
from .layout import (
    DETAIL_FONT_PT,
    LEGEND_COLUMNS,
    LEGEND_FONT_PT,
    LEGEND_LABELS,
    NAME_FONT_PT,
    STATUS_COLORS,
    TITLE_FONT_PT,
    Layout,
    compute_layout,
    detail_line,
    edge_drawing,
    status_of,
)

__all__ = ["MIN_SCALE", "PX_PER_INCH", "draw_svg", "escape"]

PX_PER_INCH = 96
"""CSS pixels per layout inch: a 9 pt label is then 12 px, as in a browser."""

_TEXT = "#1a1a1a"
_EDGE = "#555555"
_BORDER = "#444444"
_FONT = "DejaVu Sans, Verdana, Helvetica, Arial, sans-serif"
_TOP_MARGIN = 12.0  # pixels above the first layer where there is no title nor legend
MIN_SCALE = 0.75
"""The least an HTML page may shrink the picture to fit its width (a 12 px label to 9 px)."""
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def escape(text: object) -> str:
    """``text`` safe inside an element or a quoted attribute of HTML or SVG (XML forbids some
    control characters even escaped: they become U+FFFD)."""
    return html.escape(_NOT_XML.sub("\ufffd", str(text)), quote=True)


def draw_svg(
    graph: GraphLike,
    title: str | None = None,
    legend: Mapping[Status, str] | None = LEGEND_LABELS,
) -> str:
    """An ``<svg>`` element of ``graph`` (laid out as given: group it first to fit), titled
    ``title``, with a legend of the statuses in ``legend`` (status -> label; None: none)."""
    layout = compute_layout(graph, title)
    px = PX_PER_INCH
    pt = layout.scale * px / 72.0  # pixels per point
    width, height = max(1.0, layout.width * px), max(1.0, layout.height * px)

    def y_of(y: float) -> float:  # layout inches from the bottom -> pixels from the top
        return (layout.height - y) * px

    top = 0.0
    if not (title or legend) and layout.boxes:  # no band above the boxes: leave it out
        top = max(0.0, min(y_of(y + h) for _, y, _, h in layout.boxes.values()) - _TOP_MARGIN)
    shown = height - top
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{shown:.0f}" '
        f'viewBox="0 {top:.1f} {width:.1f} {shown:.1f}" font-family="{_FONT}" role="img" '
        f'style="max-width:100%;height:auto;min-width:{min(width, MIN_SCALE * width):.0f}px">',
        f"<title>{escape(title or 'task graph')}</title>",
        f'<rect y="{top:.1f}" width="100%" height="{shown:.1f}" rx="4" fill="#ffffff"/>',
    ]
    out += _edges(layout, y_of, pt)
    for node, (x, y, w, h) in layout.boxes.items():
        out.append(_box(node, graph.nodes[node], x * px, y_of(y + h), w * px, h * px, pt))
    centre = width / 2
    if title:
        size = TITLE_FONT_PT * pt
        baseline = y_of(layout.title_y) + 0.8 * size
        out.append(
            f'<text x="{centre:.1f}" y="{baseline:.1f}" font-size="{size:.1f}" '
            f'font-weight="bold" text-anchor="middle" fill="{_TEXT}">{escape(title)}</text>'
        )
    if not layout.boxes:
        out.append(
            f'<text x="{centre:.1f}" y="{height - 0.3 * px * layout.scale:.1f}" '
            f'font-size="{DETAIL_FONT_PT * pt * 1.2:.1f}" text-anchor="middle" '
            f'fill="{_TEXT}">(no tasks)</text>'
        )
    if legend:
        out += _legend(legend, centre, y_of(layout.legend_top), pt)
    out.append("</svg>")
    return "\n".join(out)


def _edges(layout: Layout, y_of: Callable[[float], float], pt: float) -> list[str]:
    """Every edge as :func:`~.layout.edge_drawing` draws it: a curve and its arrowhead."""
    curves, heads = [], []
    for route in layout.routes.values():
        pieces, head = edge_drawing(
            [(x * PX_PER_INCH, y_of(y)) for x, y in route], 5.5 * pt, 2.4 * pt
        )
        start = pieces[0][0]
        path = [f"M{start[0]:.1f},{start[1]:.1f}"]
        path += [" ".join(f"{x:.1f},{y:.1f}" for x, y in piece[1:]) for piece in pieces]
        curves.append("C".join(path))
        heads.append(" ".join(f"{x:.1f},{y:.1f}" for x, y in head))
    return [
        f'<g fill="none" stroke="{_EDGE}" stroke-width="{pt:.2f}">',
        *(f'<path d="{d}"/>' for d in curves),
        f'</g>\n<g fill="{_EDGE}">',
        *(f'<polygon points="{points}"/>' for points in heads),
        "</g>",
    ]


def _box(
    node: Hashable,
    attrs: Mapping[str, object],
    left: float,
    top: float,
    width: float,
    height: float,
    pt: float,
) -> str:
    """One task's (or group's) box: its name, its detail line and its tooltip."""
    status = status_of(attrs)
    detail = detail_line(attrs)
    dashes = f' stroke-dasharray="{3.6 * pt:.1f} {2.2 * pt:.1f}"' if status is Status.CACHED else ""
    centre, middle = left + width / 2, top + height / 2
    name_y = middle - (0.19 * height if detail else 0) + NAME_FONT_PT * pt * 0.36
    tip = str(attrs.get("tip") or node)
    parts = [
        f"<g><title>{escape(tip)}</title>",
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{height:.1f}" '
        f'rx="{0.08 * 72 * pt:.1f}" fill="{STATUS_COLORS[status]}" '
        f'stroke="{_BORDER}" stroke-width="{pt:.2f}"{dashes}/>',
        f'<text x="{centre:.1f}" y="{name_y:.1f}" font-size="{NAME_FONT_PT * pt:.1f}" '
        f'font-weight="bold" text-anchor="middle" fill="{_TEXT}">{escape(node)}</text>',
    ]
    if detail:
        parts.append(
            f'<text x="{centre:.1f}" y="{middle + 0.21 * height + DETAIL_FONT_PT * pt * 0.36:.1f}"'
            f' font-size="{DETAIL_FONT_PT * pt:.1f}" text-anchor="middle" fill="{_TEXT}">'
            f"{escape(detail)}</text>"
        )
    parts.append("</g>")
    return "".join(parts)


def _legend(labels: Mapping[Status, str], centre: float, top: float, pt: float) -> list[str]:
    """A swatch and a label for each status of ``labels``, in rows of up to three, centred."""
    size = LEGEND_FONT_PT * pt
    swatch_w, swatch_h, pad = 2.0 * size, 0.9 * size, 0.8 * size
    pitch = swatch_w + pad + 0.62 * size * max(len(label) for label in labels.values()) + size
    entries = list(labels.items())
    out = []
    for index, (status, label) in enumerate(entries):
        row, column = divmod(index, LEGEND_COLUMNS)
        in_row = min(LEGEND_COLUMNS, len(entries) - row * LEGEND_COLUMNS)
        x = centre - in_row * pitch / 2 + column * pitch
        y = top + row * 1.55 * size
        dashes = (
            f' stroke-dasharray="{2.5 * pt:.1f} {1.5 * pt:.1f}"' if status is Status.CACHED else ""
        )
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{swatch_w:.1f}" height="{swatch_h:.1f}" '
            f'rx="{0.15 * size:.1f}" fill="{STATUS_COLORS[status]}" stroke="{_BORDER}" '
            f'stroke-width="{pt:.2f}"{dashes}/>'
            f'<text x="{x + swatch_w + pad:.1f}" y="{y + swatch_h / 2 + 0.36 * size:.1f}" '
            f'font-size="{size:.1f}" fill="{_TEXT}">{escape(label)}</text>'
        )
    return out
