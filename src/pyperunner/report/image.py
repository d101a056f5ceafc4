"""Render a pipeline's task graph as a PNG picture coloured by task status.

The picture is drawn with Pillow alone (no Graphviz, no matplotlib), in the layout of
:mod:`.layout`, whose inches become pixels at the resolution it chooses (``dpi_for``).

Drawing goes straight into an 8-bit palette image, which keeps even a 200-task picture to a
few tens of milliseconds: shapes are anti-aliased by rasterising them at four times the
resolution and mapping the coverage onto colour ramps held in the palette, and text is set
in DejaVu Sans from cached glyphs (Pillow's built-in font if DejaVu is not installed).
"""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

from ..dag import GraphLike
from ..status import Status
from .glyphs import Font, cap_span, fitting_font, glyph, ink_span, load_font
from .groups import grouped
from .layout import (
    DETAIL_FONT_PT,
    LEGEND_COLUMNS,
    LEGEND_FONT_PT,
    LEGEND_LABELS,
    MARGIN,
    NAME_FONT_PT,
    STATUS_COLORS,
    TITLE_FONT_PT,
    Layout,
    Piece,
    compute_layout,
    detail_line,
    dpi_for,
    edge_drawing,
    layout_boxes,
    status_of,
)
from .palette import BORDER_COLOR, EDGE_COLOR, TEXT_LEVELS, WHITE, status_palette

__all__ = ["STATUS_COLORS", "layout_boxes", "write_status_png"]

_SUPERSAMPLE = 4  # sub-pixels per pixel (each way) when drawing shapes
_NONZERO = [0] + [255] * 255
_OPAQUE = [0] * 255 + [255]
_PNG_COMPRESSION = 1
_BAND_AREA = 40_000  # pixels: edge bands are merged into tiles up to about this size
_CURVE_STEPS = 10  # straight lines to a bent piece of an edge's curve


# --------------------------------------------------------------------------- drawing


class _Canvas:
    """A palette image in the making, with pixel helpers (origin at the top left)."""

    def __init__(self, layout: Layout, dpi: int) -> None:
        self.palette = status_palette()
        self.dpi = dpi
        self.height_in = layout.height
        self.pt = layout.scale * dpi / 72.0  # pixels per point of font size or line width
        size = (max(1, round(layout.width * dpi)), max(1, round(layout.height * dpi)))
        # Mode "L" while drawing (so pastes and text copy indices untouched), "P" at the end.
        self.image = Image.new("L", size, self.palette.text_base[WHITE])
        self.draw = ImageDraw.Draw(self.image)
        self.line_width = 1.0 * self.pt
        self._tiles: dict[tuple, tuple[Image.Image, Image.Image]] = {}

    def px(self, x: float, y: float) -> tuple[float, float]:
        """Pixel position of a point given in layout inches (origin bottom left)."""
        return x * self.dpi, (self.height_in - y) * self.dpi

    # ----------------------------------------------------------------- boxes

    def box(self, x0: int, y0: int, width: int, height: int, status: Status, radius: float) -> None:
        """A rounded box of ``status``'s colour; its inside stays that colour's text base."""
        key = (width, height, status, radius)
        if key not in self._tiles:
            self._tiles[key] = self._box_tile(width, height, status, radius)
        tile, mask = self._tiles[key]
        self.image.paste(tile, (x0 - 1, y0 - 1), mask)

    def _box_tile(
        self, width: int, height: int, status: Status, radius: float
    ) -> tuple[Image.Image, Image.Image]:
        ss = _SUPERSAMPLE
        fill = STATUS_COLORS[status]
        size = ((width + 2) * ss, (height + 2) * ss)
        border = max(1, round(self.line_width * ss))
        outer = Image.new("L", size, 0)
        inner = Image.new("L", size, 0)
        rect = (ss, ss, (width + 1) * ss - 1, (height + 1) * ss - 1)
        ImageDraw.Draw(outer).rounded_rectangle(rect, radius=radius * ss, fill=255)
        ImageDraw.Draw(inner).rounded_rectangle(
            (rect[0] + border, rect[1] + border, rect[2] - border, rect[3] - border),
            radius=max(0.0, radius * ss - border),
            fill=255,
        )
        ring = ImageChops.subtract(outer, inner)
        if status is Status.CACHED:
            ring = ImageChops.multiply(ring, self._dash_mask(size, rect, radius * ss))
        cover = outer.reduce(ss)
        stroke = ring.reduce(ss)
        luts = self.palette.luts
        tile = cover.point(luts[(WHITE, fill)])
        on_stroke = stroke.point(_NONZERO)
        inside = ImageChops.multiply(on_stroke, cover.point(_OPAQUE))
        tile.paste(stroke.point(luts[(fill, BORDER_COLOR)]), (0, 0), inside)
        rim = ImageChops.subtract(on_stroke, inside)
        tile.paste(stroke.point(luts[(WHITE, BORDER_COLOR)]), (0, 0), rim)
        return tile, cover.point(_NONZERO)

    def _dash_mask(self, size: tuple[int, int], rect: tuple, radius: float) -> Image.Image:
        """Where a dashed border is inked: corners, then evenly spaced dashes on each side."""
        ss = _SUPERSAMPLE
        dash = max(2.0, 3.6 * self.line_width) * ss
        gap = max(1.5, 2.2 * self.line_width) * ss
        mask = Image.new("L", size, 255)
        draw = ImageDraw.Draw(mask)
        left, top, right, bottom = rect
        corner = max(radius, dash / 2)
        # Gaps at both ends of each straight side and evenly between its dashes.
        for lo, hi, horizontal in (
            (left + corner, right - corner, True),
            (top + corner, bottom - corner, False),
        ):
            if hi - lo < dash + 2 * gap:
                continue  # too short for a dash between two gaps: left solid
            count = max(1, round((hi - lo - gap) / (dash + gap)))
            period = (hi - lo - gap) / count
            for i in range(count + 1):
                start = lo + i * period
                if horizontal:
                    draw.rectangle((start, 0, start + gap - 1, size[1]), fill=0)
                else:
                    draw.rectangle((0, start, size[0], start + gap - 1), fill=0)
        return mask

    # ----------------------------------------------------------------- text

    def text(
        self,
        text: str,
        font: Font,
        centre_x: float,
        y: float,
        background: str,
        vertical: str = "middle",
    ) -> None:
        """Text centred on ``centre_x``, over pixels that are ``background``'s text base.

        ``vertical`` says what ``y`` is: the middle of the capitals (``middle``), their top
        (``top``) or the baseline (``baseline``).
        """
        cap_top, baseline = cap_span(font)
        offset = {"middle": (cap_top + baseline) / 2, "top": cap_top, "baseline": baseline}
        glyphs = [glyph(font, char) for char in text]
        x = round(centre_x - sum(glyph[3] for glyph in glyphs) / 2)
        y0 = round(y - offset[vertical])
        ink = self.palette.text_base[background] + TEXT_LEVELS - 1
        pen = 0.0
        for mask, dx, dy, advance in glyphs:
            if mask is not None:
                self.draw.bitmap((x + round(pen) + dx, y0 + dy), mask, fill=ink)
            pen += advance

    # ----------------------------------------------------------------- edges

    def edges(self, routes: list[list[tuple[float, float]]]) -> None:
        """Each edge as :func:`~.layout.edge_drawing` draws it, anti-aliased: its curve in short
        straight lines (round at its start), and its arrowhead, drawn band by band."""
        width = self.line_width
        bands: dict[tuple[int, int], list[list[tuple[float, float]]]] = {}
        for route in routes:
            points = [self._snap(*self.px(x, y)) for x, y in route]
            pieces, head = edge_drawing(points, 5.5 * self.pt, 2.4 * self.pt)
            line = _flattened(pieces)
            shapes = [_cap(line[0], width / 2), head]
            for a, b in itertools.pairwise(line):
                shapes.append(_segment(a, b, width))
            for shape in shapes:
                ys = [y for _, y in shape]
                bands.setdefault((round(min(ys)), round(max(ys))), []).append(shape)
        for shapes in self._merge_bands([bands[key] for key in sorted(bands)]):
            self._paste_band(shapes)

    @staticmethod
    def _merge_bands(
        bands: list[list[list[tuple[float, float]]]],
    ) -> list[list[list[tuple[float, float]]]]:
        """Join neighbouring bands while that wastes little area: fewer, fuller tiles."""

        def bounds(shapes: list) -> tuple[float, float, float, float]:
            xs = [x for shape in shapes for x, _ in shape]
            ys = [y for shape in shapes for _, y in shape]
            return min(xs), min(ys), max(xs), max(ys)

        def area(b: tuple[float, float, float, float]) -> float:
            return (b[2] - b[0] + 3) * (b[3] - b[1] + 3)

        merged: list[list[list[tuple[float, float]]]] = []
        current: tuple[float, float, float, float] | None = None
        for shapes in bands:
            box = bounds(shapes)
            if current is not None:
                union = (
                    min(current[0], box[0]),
                    min(current[1], box[1]),
                    max(current[2], box[2]),
                    max(current[3], box[3]),
                )
                if area(union) <= max(_BAND_AREA, 1.25 * (area(current) + area(box))):
                    merged[-1] = merged[-1] + shapes
                    current = union
                    continue
            merged.append(list(shapes))
            current = box
        return merged

    def _snap(self, x: float, y: float) -> tuple[float, float]:
        """Centre of the pixel column, so vertical lines stay crisp."""
        return math.floor(x) + 0.5, y

    def _paste_band(self, shapes: list[list[tuple[float, float]]]) -> None:
        """Rasterise ``shapes`` at the supersampled scale and merge them into the image."""
        ss = _SUPERSAMPLE
        xs = [x for shape in shapes for x, _ in shape]
        ys = [y for shape in shapes for _, y in shape]
        img_w, img_h = self.image.size
        x0, y0 = max(0, math.floor(min(xs)) - 1), max(0, math.floor(min(ys)) - 1)
        x1, y1 = min(img_w, math.ceil(max(xs)) + 1), min(img_h, math.ceil(max(ys)) + 1)
        if x1 <= x0 or y1 <= y0:
            return
        hires = Image.new("L", ((x1 - x0) * ss, (y1 - y0) * ss), 0)
        draw = ImageDraw.Draw(hires)
        for shape in shapes:
            draw.polygon([((x - x0) * ss, (y - y0) * ss) for x, y in shape], fill=255)
        cover = hires.reduce(ss)
        box = (x0, y0, x1, y1)
        cover = ImageChops.lighter(cover, self.image.crop(box).point(self.palette.edge_coverage))
        lut = self.palette.luts[(WHITE, EDGE_COLOR)]
        self.image.paste(cover.point(lut), box, cover.point(_NONZERO))

    # ----------------------------------------------------------------- output

    def save(self, path: Path) -> None:
        self.image.putpalette(self.palette.image_palette())
        self.image.save(path, format="PNG", compress_level=_PNG_COMPRESSION)


def _flattened(pieces: list[Piece]) -> list[tuple[float, float]]:
    """Points along a curve, ``_CURVE_STEPS`` straight lines to each bent piece, one to a
    straight one."""
    points = [pieces[0][0]]
    for (ax, ay), (bx, by), (cx, cy), (dx, dy) in pieces:
        steps = 1 if ax == dx else _CURVE_STEPS
        for i in range(1, steps + 1):
            t = i / steps
            u = 1 - t
            a, b, c, d = u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t
            points.append((a * ax + b * bx + c * cx + d * dx, a * ay + b * by + c * cy + d * dy))
    return points


def _segment(
    a: tuple[float, float], b: tuple[float, float], width: float
) -> list[tuple[float, float]]:
    """The polygon inking the straight line ``a``-``b``, ``width`` wide."""
    length = math.hypot(b[0] - a[0], b[1] - a[1]) or 1.0
    nx_, ny_ = -(b[1] - a[1]) / length * width / 2, (b[0] - a[0]) / length * width / 2
    return [
        (a[0] + nx_, a[1] + ny_),
        (b[0] + nx_, b[1] + ny_),
        (b[0] - nx_, b[1] - ny_),
        (a[0] - nx_, a[1] - ny_),
    ]


def _cap(centre: tuple[float, float], radius: float) -> list[tuple[float, float]]:
    """A round end: a twelve-sided polygon."""
    cx, cy = centre
    return [
        (cx + radius * math.cos(t * math.pi / 6), cy + radius * math.sin(t * math.pi / 6))
        for t in range(12)
    ]


def _draw_tasks(canvas: _Canvas, graph: GraphLike, layout: Layout) -> None:
    pt = canvas.pt
    radius = 0.08 * layout.scale * canvas.dpi
    pad = 0.08 * layout.scale * canvas.dpi
    for node, (x, y, w, h) in layout.boxes.items():
        left, top = canvas.px(x, y + h)
        right, bottom = canvas.px(x + w, y)
        x0, y0 = round(left), round(top)
        width, height = round(right) - x0, round(bottom) - y0
        status = status_of(graph.nodes[node])
        canvas.box(x0, y0, width, height, status, radius)
        fill = STATUS_COLORS[status]
        room = width - 2 * pad
        centre_x, centre_y = x0 + width / 2, y0 + height / 2
        name, detail = str(node), detail_line(graph.nodes[node])
        name_font = fitting_font(name, NAME_FONT_PT * pt, True, room)
        detail_font = fitting_font(detail, DETAIL_FONT_PT * pt, False, room)
        canvas.text(name, name_font, centre_x, centre_y - 0.19 * height, fill)
        canvas.text(detail, detail_font, centre_x, centre_y + 0.21 * height, fill)


def _draw_legend(canvas: _Canvas, layout: Layout) -> None:
    """Swatch and label of every status, in three columns filled top to bottom."""
    pt = canvas.pt
    font_px = LEGEND_FONT_PT * pt
    font = load_font(font_px, False)
    statuses = list(Status)
    rows = math.ceil(len(statuses) / LEGEND_COLUMNS)
    long_columns = len(statuses) % LEGEND_COLUMNS or LEGEND_COLUMNS
    columns: list[list[Status]] = []
    for c in range(LEGEND_COLUMNS):
        take = rows if c < long_columns else rows - 1
        columns.append(statuses[sum(len(col) for col in columns) :][:take])
    swatch_w, swatch_h = round(2.0 * font_px), max(3, round(0.9 * font_px))
    text_pad, column_gap, row_pitch = 0.8 * font_px, 2.0 * font_px, 1.55 * font_px
    widths = [
        swatch_w + text_pad + max(ink_span(font, LEGEND_LABELS[s])[2] for s in col)
        for col in columns
    ]
    total = sum(widths) + column_gap * (len(columns) - 1)
    x = layout.width * canvas.dpi / 2 - total / 2
    top = canvas.px(0, layout.legend_top)[1]
    for col, col_width in zip(columns, widths, strict=True):
        for row, status in enumerate(col):
            y_mid = top + row * row_pitch + swatch_h / 2
            x0, y0 = round(x), round(y_mid - swatch_h / 2)
            canvas.box(x0, y0, swatch_w, swatch_h, status, 0.15 * font_px)
            label = LEGEND_LABELS[status]
            label_left = x0 + swatch_w + text_pad
            span = ink_span(font, label)
            canvas.text(label, font, label_left + (span[0] + span[2]) / 2, y_mid, WHITE)
        x += col_width + column_gap


def _render(graph: GraphLike, layout: Layout, title: str | None, dpi: int) -> _Canvas:
    """Draw the picture (not yet saved)."""
    canvas = _Canvas(layout, dpi)
    canvas.edges(list(layout.routes.values()))
    _draw_tasks(canvas, graph, layout)
    centre_x = layout.width * dpi / 2
    if title:
        font = fitting_font(
            title, TITLE_FONT_PT * canvas.pt, True, canvas.image.width - 2 * MARGIN * dpi
        )
        canvas.text(title, font, centre_x, canvas.px(0, layout.title_y)[1], WHITE, "top")
    if not layout.boxes:
        font = load_font(DETAIL_FONT_PT * canvas.pt * 1.2, False)
        baseline = canvas.px(0, MARGIN * layout.scale)[1]
        canvas.text("(no tasks)", font, centre_x, baseline, WHITE, "baseline")
    _draw_legend(canvas, layout)
    return canvas


def write_status_png(
    graph: GraphLike, path: str | os.PathLike[str], title: str | None = None
) -> Path:
    """Draw the DAG coloured by task status to a PNG file and return its path.

    The file holds PNG bytes whatever its suffix; missing parent folders are created.
    Raises ``ValueError`` if the graph has a cycle (before anything is written).
    """
    graph = grouped(graph)  # too big to draw task by task: like tasks as one box
    layout = compute_layout(graph, title)
    canvas = _render(graph, layout, title, dpi_for(layout.width, layout.height))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
