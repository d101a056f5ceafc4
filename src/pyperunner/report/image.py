"""Render a pipeline's task graph as a PNG picture coloured by task status.

The picture is drawn with Pillow alone (no Graphviz, no matplotlib): tasks are placed in
layers by their longest path from a root, so every parent sits above its children, the order
within a layer is improved by a few barycenter sweeps to reduce edge crossings, and long
edges are routed through invisible waypoints so they do not run behind other boxes. All
positions are computed in inches from an estimate of the label widths, so boxes keep a
readable size and never overlap however many tasks there are; the picture grows instead (up
to a cap, beyond which everything, text included, is scaled down together). Inches become
pixels at 100 per inch, fewer for pictures that would exceed 20 megapixels.

Drawing goes straight into an 8-bit palette image, which keeps even a 200-task picture to a
few tens of milliseconds: shapes are anti-aliased by rasterising them at four times the
resolution and mapping the coverage onto colour ramps held in the palette, and text is set
in DejaVu Sans from cached glyphs (Pillow's built-in font if DejaVu is not installed).
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFont

from ..graph import GraphLike, topological_order
from ..status import Status
from .text import format_duration

__all__ = ["STATUS_COLORS", "layout_boxes", "write_status_png"]

#: Face colour of a task box (and its legend entry) for each status.
STATUS_COLORS: dict[Status, str] = {
    Status.NOT_STARTED: "#d9d9d9",
    Status.RUNNING: "#6baed6",
    Status.SUCCESS: "#74c476",
    Status.CACHED: "#c7e9c0",
    Status.FAILURE: "#fb6a4a",
    Status.CANT_RUN: "#fdae6b",
    Status.INTERRUPTED: "#bcbddc",
}

_LEGEND_LABELS: dict[Status, str] = {
    Status.NOT_STARTED: "not started",
    Status.RUNNING: "running",
    Status.SUCCESS: "success",
    Status.CACHED: "cached",
    Status.FAILURE: "failure",
    Status.CANT_RUN: "can't run",
    Status.INTERRUPTED: "interrupted",
}

# Sizes below are in inches (or points where named so) before any down-scaling.
_NAME_FONT_PT = 9.0
_DETAIL_FONT_PT = 8.0
_TITLE_FONT_PT = 12.0
_LEGEND_FONT_PT = 8.0
_CHAR_WIDTH_PER_PT = 0.09 / 9.0  # inches per character per point of font size
_BOX_PAD_X = 0.15
_BOX_MIN_WIDTH = 0.9
_BOX_HEIGHT = 0.55
_H_GAP = 0.3  # between neighbouring boxes of a layer
_V_GAP = 0.5  # least gap between layers, room for the arrows
_V_GAP_PER_SPREAD = 0.06  # extra gap per inch an edge runs sideways, so fans stay legible
_MAX_V_GAP = 1.5
_DUMMY_WIDTH = 0.1  # width reserved for a long edge passing through a layer
_MARGIN = 0.3
_TITLE_BAND = 0.45
_LEGEND_BAND = 0.55  # three rows of up to three entries
_LEGEND_COLUMNS = 3
_EDGE_COLOR = "#555555"
_BORDER_COLOR = "#444444"

_MAX_FIGURE_INCHES = 200.0
_MAX_PIXELS = 20_000_000
_DEFAULT_DPI = 100
_MIN_DPI = 20
_BARYCENTER_SWEEPS = 4


@dataclass
class _Layout:
    """Everything the drawing needs, in final figure inches (origin at the bottom left)."""

    width: float
    height: float
    scale: float
    boxes: dict[Hashable, tuple[float, float, float, float]] = field(default_factory=dict)
    routes: dict[tuple[Hashable, Hashable], list[tuple[float, float]]] = field(default_factory=dict)
    title_y: float = 0.0
    legend_top: float = 0.0


@dataclass(frozen=True)
class _Dummy:
    """Invisible waypoint of a long edge in one intermediate layer."""

    edge: tuple[Hashable, Hashable]
    layer: int


# --------------------------------------------------------------------------- labels


def _node_status(graph: GraphLike, node: Hashable) -> Status:
    """The node's ``status`` attribute as a ``Status`` (NOT_STARTED if missing)."""
    value = graph.nodes[node].get("status")
    return Status.NOT_STARTED if value is None else Status(value)


def _detail_line(graph: GraphLike, node: Hashable) -> str:
    """Second line of a box: the status, plus the duration when known (``cached`` if cached)."""
    status = _node_status(graph, node)
    if status is Status.CACHED:
        return "cached"
    duration = graph.nodes[node].get("duration")
    if duration is None:
        return status.value
    return f"{status.value} · {format_duration(float(duration))}"


def _text_width(text: str, font_pt: float) -> float:
    """Estimated width in inches of ``text`` set at ``font_pt``."""
    return len(text) * _CHAR_WIDTH_PER_PT * font_pt


def _box_width(graph: GraphLike, node: Hashable) -> float:
    """Unscaled box width in inches that fits both label lines."""
    text = max(
        _text_width(str(node), _NAME_FONT_PT),
        _text_width(_detail_line(graph, node), _DETAIL_FONT_PT),
    )
    return max(_BOX_MIN_WIDTH, text + 2 * _BOX_PAD_X)


def _legend_width() -> float:
    """Estimated width in inches of the legend (three columns of colour patches)."""
    labels = [_LEGEND_LABELS[s] for s in Status]
    columns = [labels[i::_LEGEND_COLUMNS] for i in range(_LEGEND_COLUMNS)]
    text = sum(_text_width(max(col, key=len), _LEGEND_FONT_PT) for col in columns)
    em = _LEGEND_FONT_PT / 72.0
    return text + _LEGEND_COLUMNS * 5.0 * em  # handle, padding and column spacing


# --------------------------------------------------------------------------- layering


def _longest_path_layers(graph: GraphLike) -> dict[Hashable, int]:
    """Layer of each node: length of the longest path reaching it from a root.

    Raises ``ValueError`` naming a cycle if there is one.
    """
    layer: dict[Hashable, int] = {}
    for node in topological_order(graph):
        layer[node] = max((layer[p] + 1 for p in graph.predecessors(node)), default=0)
    return layer


def _expand_long_edges(
    graph: GraphLike, layer: dict[Hashable, int]
) -> tuple[list[list[Hashable]], dict[Hashable, list[Hashable]], dict[Hashable, list[Hashable]]]:
    """Layers (in graph order) plus up/down neighbours, with dummies splitting long edges."""
    depth = max(layer.values(), default=-1) + 1
    layers: list[list[Hashable]] = [[] for _ in range(depth)]
    for node in graph.nodes:
        layers[layer[node]].append(node)
    up: dict[Hashable, list[Hashable]] = {n: [] for n in graph.nodes}
    down: dict[Hashable, list[Hashable]] = {n: [] for n in graph.nodes}
    for u, v in graph.edges:
        chain: list[Hashable] = [u]
        for k in range(layer[u] + 1, layer[v]):
            dummy = _Dummy((u, v), k)
            layers[k].append(dummy)
            up[dummy], down[dummy] = [], []
            chain.append(dummy)
        chain.append(v)
        for a, b in itertools.pairwise(chain):
            down[a].append(b)
            up[b].append(a)
    return layers, up, down


def _reorder(
    layer_nodes: list[Hashable], neighbour_layer: list[Hashable], neighbours: dict
) -> list[Hashable]:
    """Sort one layer by the mean relative position of each node's neighbours."""
    where = {n: (i + 0.5) / len(neighbour_layer) for i, n in enumerate(neighbour_layer)}
    own = {n: (i + 0.5) / len(layer_nodes) for i, n in enumerate(layer_nodes)}

    def key(node: Hashable) -> float:
        xs = [where[m] for m in neighbours[node] if m in where]
        return sum(xs) / len(xs) if xs else own[node]

    return sorted(layer_nodes, key=key)


def _barycenter_order(
    layers: list[list[Hashable]], up: dict, down: dict, sweeps: int = _BARYCENTER_SWEEPS
) -> list[list[Hashable]]:
    """Alternate downward and upward barycenter sweeps to reduce edge crossings."""
    layers = [list(nodes) for nodes in layers]
    for _ in range(sweeps):
        for i in range(1, len(layers)):
            layers[i] = _reorder(layers[i], layers[i - 1], up)
        for i in range(len(layers) - 2, -1, -1):
            layers[i] = _reorder(layers[i], layers[i + 1], down)
    return layers


# --------------------------------------------------------------------------- geometry


def _compute_layout(graph: GraphLike, title: str | None) -> _Layout:
    """Positions of every box and edge route, in final figure inches."""
    layers, up, down = _expand_long_edges(graph, _longest_path_layers(graph))
    layers = _barycenter_order(layers, up, down)

    widths = {n: _box_width(graph, n) for n in graph.nodes}

    def width_of(node: Hashable) -> float:
        return _DUMMY_WIDTH if isinstance(node, _Dummy) else widths[node]

    row_widths = [sum(width_of(n) for n in row) + _H_GAP * (len(row) - 1) for row in layers]
    content_w = max(row_widths, default=0.0)
    title_w = _text_width(title, _TITLE_FONT_PT) * 1.15 if title else 0.0
    inner_w = max(content_w, _legend_width(), title_w)

    xs = _row_x_positions(layers, row_widths, inner_w, width_of)
    gaps = _layer_gaps(layers, down, {n: xs[n] + width_of(n) / 2 for n in xs})
    content_h = len(layers) * _BOX_HEIGHT + sum(gaps)
    top_band = _LEGEND_BAND + (_TITLE_BAND if title else 0.0)
    width = inner_w + 2 * _MARGIN
    height = content_h + top_band + 2 * _MARGIN + (_V_GAP / 2 if layers else 0.0)
    scale = min(1.0, _MAX_FIGURE_INCHES / width, _MAX_FIGURE_INCHES / height)

    ys = _row_y_positions(layers, gaps)
    place = {n: (xs[n], ys[n], width_of(n), _BOX_HEIGHT) for n in xs}

    def scaled(rect: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        return (rect[0] * scale, rect[1] * scale, rect[2] * scale, rect[3] * scale)

    layout = _Layout(width=width * scale, height=height * scale, scale=scale)
    layout.boxes = {n: scaled(place[n]) for n in graph.nodes}
    layout.routes = _edge_routes(graph, layers, {n: scaled(r) for n, r in place.items()})
    layout.title_y = (height - _MARGIN) * scale
    layout.legend_top = (height - _MARGIN - (_TITLE_BAND if title else 0.0)) * scale
    return layout


def _row_x_positions(
    layers: list[list[Hashable]],
    row_widths: list[float],
    inner_w: float,
    width_of: Callable[[Hashable], float],
) -> dict[Hashable, float]:
    """Left edge of every box (unscaled): each row packed evenly and centred."""
    xs: dict[Hashable, float] = {}
    for row, row_w in zip(layers, row_widths, strict=True):
        x = _MARGIN + (inner_w - row_w) / 2
        for node in row:
            xs[node] = x
            x += width_of(node) + _H_GAP
    return xs


def _row_y_positions(layers: list[list[Hashable]], gaps: list[float]) -> dict[Hashable, float]:
    """Bottom edge of every box (unscaled): layer 0 at the top, rows separated by ``gaps``."""
    ys: dict[Hashable, float] = {}
    y = _MARGIN + len(layers) * _BOX_HEIGHT + sum(gaps)
    for index, row in enumerate(layers):
        y -= _BOX_HEIGHT + (gaps[index - 1] if index else 0.0)
        for node in row:
            ys[node] = y
    return ys


def _layer_gaps(
    layers: list[list[Hashable]], down: dict, centre_x: dict[Hashable, float]
) -> list[float]:
    """Vertical gap below each layer but the last, taller where its edges run far sideways."""
    gaps = []
    for row in layers[:-1]:
        spread = max((abs(centre_x[m] - centre_x[n]) for n in row for m in down[n]), default=0)
        gaps.append(min(_MAX_V_GAP, max(_V_GAP, _V_GAP_PER_SPREAD * spread)))
    return gaps


def _edge_routes(
    graph: GraphLike,
    layers: list[list[Hashable]],
    rects: dict[Hashable, tuple[float, float, float, float]],
) -> dict[tuple[Hashable, Hashable], list[tuple[float, float]]]:
    """Polyline for each edge: parent's bottom centre, waypoints, child's top centre."""
    waypoints: dict[tuple[Hashable, Hashable], list[_Dummy]] = {}
    for row in layers:
        for node in row:
            if isinstance(node, _Dummy):
                waypoints.setdefault(node.edge, []).append(node)
    routes: dict[tuple[Hashable, Hashable], list[tuple[float, float]]] = {}
    for u, v in graph.edges:
        ux, uy, uw, _ = rects[u]
        vx, vy, vw, vh = rects[v]
        points = [(ux + uw / 2, uy)]
        for dummy in sorted(waypoints.get((u, v), []), key=lambda d: d.layer):
            dx, dy, dw, dh = rects[dummy]
            points += [(dx + dw / 2, dy + dh), (dx + dw / 2, dy)]
        points.append((vx + vw / 2, vy + vh))
        routes[(u, v)] = points
    return routes


def layout_boxes(
    graph: GraphLike, title: str | None = None
) -> dict[str, tuple[float, float, float, float]]:
    """Box of every task as ``(x, y, width, height)`` in figure inches, origin bottom left.

    These are exactly the rectangles :func:`write_status_png` draws. Raises ``ValueError``
    if the graph has a cycle.
    """
    return dict(_compute_layout(graph, title).boxes)


# --------------------------------------------------------------------------- palette
#
# The picture is drawn straight into an 8-bit palette image: it is a third the size of an
# RGB one to fill and to compress, which is what keeps a tall 200-task picture fast. Smooth
# edges come from colour ramps in the palette. Each ramp from a background colour to the
# text colour takes contiguous indices, so text drawn with the ramp's last index over its
# first is blended by Pillow into exactly the right ramp entries; other ramps (white to a
# box fill, a fill to the border, white to the border or to the edges) are reached through
# lookup tables from the coverage (0-255) of shapes drawn at a higher resolution.

_WHITE = "#ffffff"
_TEXT_COLOR = "#1a1a1a"
_TEXT_LEVELS = 16  # entries in a background-to-text ramp, both ends included
_SHAPE_LEVELS = 9  # entries in any other ramp, both ends included
_SUPERSAMPLE = 4  # sub-pixels per pixel (each way) when drawing shapes
_NONZERO = [0] + [255] * 255
_OPAQUE = [0] * 255 + [255]
_PNG_COMPRESSION = 1
_BAND_AREA = 40_000  # pixels: edge bands are merged into tiles up to about this size


def _rgb(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


def _mix(low: str, high: str, t: float) -> tuple[int, int, int]:
    return tuple(round(a + (b - a) * t) for a, b in zip(_rgb(low), _rgb(high), strict=True))


@dataclass
class _Palette:
    """The fixed palette: colour entries, text ramps and coverage lookup tables."""

    colours: list[tuple[int, ...]] = field(default_factory=list)
    #: Background colour -> index of that colour, first of its contiguous ramp to the text.
    text_base: dict[str, int] = field(default_factory=dict)
    #: (background, foreground) -> 256 palette indices, one per coverage value.
    luts: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    #: Palette index -> coverage, for the white-to-edge ramp (0 for any other index).
    edge_coverage: list[int] = field(default_factory=list)

    def add_ramp(self, low: str, high: str, low_index: int, high_index: int) -> list[int]:
        """Append the inner entries of a ramp and return its coverage lookup table."""
        steps = [low_index]
        for k in range(1, _SHAPE_LEVELS - 1):
            steps.append(len(self.colours))
            self.colours.append(_mix(low, high, k / (_SHAPE_LEVELS - 1)))
        steps.append(high_index)
        lut = [steps[round(c * (_SHAPE_LEVELS - 1) / 255)] for c in range(256)]
        self.luts[(low, high)] = lut
        return lut

    def image_palette(self) -> list[int]:
        flat = [channel for colour in self.colours for channel in colour]
        return flat + [0] * (768 - len(flat))


@functools.cache
def _palette() -> _Palette:
    palette = _Palette()
    for background in (_WHITE, *STATUS_COLORS.values()):  # white first: index 0
        palette.text_base[background] = len(palette.colours)
        palette.colours += [
            _mix(background, _TEXT_COLOR, k / (_TEXT_LEVELS - 1)) for k in range(_TEXT_LEVELS)
        ]
    border, edge = len(palette.colours), len(palette.colours) + 1
    palette.colours += [_rgb(_BORDER_COLOR), _rgb(_EDGE_COLOR)]
    white = palette.text_base[_WHITE]
    for fill in STATUS_COLORS.values():
        palette.add_ramp(_WHITE, fill, white, palette.text_base[fill])
        palette.add_ramp(fill, _BORDER_COLOR, palette.text_base[fill], border)
    palette.add_ramp(_WHITE, _BORDER_COLOR, white, border)
    edge_lut = palette.add_ramp(_WHITE, _EDGE_COLOR, white, edge)
    palette.edge_coverage = [0] * 256
    for coverage in range(255, -1, -1):  # the lowest coverage giving each index
        palette.edge_coverage[edge_lut[coverage]] = coverage
    palette.edge_coverage[white] = 0
    assert len(palette.colours) <= 256
    return palette


# --------------------------------------------------------------------------- fonts

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
# Basic layout: hinted whole-pixel advances, so glyphs set one by one space evenly.
_BASIC_LAYOUT = getattr(getattr(ImageFont, "Layout", None), "BASIC", 0)


@functools.cache
def _font(size: float, bold: bool) -> _Font:
    """DejaVu Sans (bold) at ``size`` pixels, or Pillow's built-in font if it is missing."""
    names = ["DejaVuSans-Bold.ttf"] if bold else []
    names.append("DejaVuSans.ttf")
    for name in names:
        for candidate in (name, f"/usr/share/fonts/truetype/dejavu/{name}"):
            for sized in (size, max(1, round(size))):  # float sizes need Pillow >= 10.1
                try:
                    return ImageFont.truetype(candidate, sized, layout_engine=_BASIC_LAYOUT)
                except (OSError, TypeError, ValueError):
                    continue
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType
    except (TypeError, OSError, ImportError):
        pass
    try:
        return ImageFont.load_default()
    except (OSError, ImportError):  # FreeType unusable: Pillow's fixed-size bitmap font
        return ImageFont.load_default_imagefont()


def _ink_span(font: _Font, text: str) -> tuple[int, ...]:
    """``(left, top, right, bottom)`` of ``text`` drawn at the origin."""
    try:
        return tuple(font.getbbox(text))
    except AttributeError:  # bitmap fonts of Pillow < 9.2
        width, height = font.getsize(text)  # type: ignore[union-attr]
        return (0, 0, width, height)


@functools.lru_cache(maxsize=8192)
def _glyph(font: _Font, char: str) -> tuple[Image.Image | None, int, int, float]:
    """Coverage mask of one character, its offset from the pen position, and its advance.

    Text is set from these cached glyphs: rasterising (and hinting) every string anew costs
    far more than the rest of the picture.
    """
    try:
        advance = float(font.getlength(char))
    except AttributeError:  # bitmap fonts of Pillow < 9.2
        advance = float(font.getsize(char)[0])  # type: ignore[union-attr]
    left, top, right, bottom = _ink_span(font, char)
    if right <= left or bottom <= top:
        return None, 0, 0, advance
    mask = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(mask).text((-left, -top), char, font=font, fill=255)
    return mask, left, top, advance


def _set_width(font: _Font, text: str) -> float:
    """Width in pixels of ``text`` set from cached glyphs."""
    return sum(_glyph(font, char)[3] for char in text)


@functools.lru_cache(maxsize=256)
def _cap_span(font: _Font) -> tuple[int, int]:
    """Top and bottom (the baseline) of a capital letter, below the drawing origin."""
    _, top, _, bottom = _ink_span(font, "H")
    return top, bottom


def _fitting_font(text: str, size: float, bold: bool, max_width: float) -> _Font:
    """The font at ``size``, or smaller until ``text`` is at most ``max_width`` wide."""
    font = _font(size, bold)
    for _ in range(4):
        width = _set_width(font, text)
        if width <= max_width or size <= 4:
            break
        size = max(4.0, round(size * max_width / width - 0.25, 1))
        font = _font(size, bold)
    return font


# --------------------------------------------------------------------------- drawing


def _dpi_for(width: float, height: float) -> int:
    """Default pixels per inch, lowered so the PNG stays under the pixel budget."""
    fit = math.floor(math.sqrt(_MAX_PIXELS / max(width * height, 1e-9)))
    return max(_MIN_DPI, min(_DEFAULT_DPI, fit))


class _Canvas:
    """A palette image in the making, with pixel helpers (origin at the top left)."""

    def __init__(self, layout: _Layout, dpi: int) -> None:
        self.palette = _palette()
        self.dpi = dpi
        self.height_in = layout.height
        self.pt = layout.scale * dpi / 72.0  # pixels per point of font size or line width
        size = (max(1, round(layout.width * dpi)), max(1, round(layout.height * dpi)))
        # Mode "L" while drawing (so pastes and text copy indices untouched), "P" at the end.
        self.image = Image.new("L", size, self.palette.text_base[_WHITE])
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
        tile = cover.point(luts[(_WHITE, fill)])
        on_stroke = stroke.point(_NONZERO)
        inside = ImageChops.multiply(on_stroke, cover.point(_OPAQUE))
        tile.paste(stroke.point(luts[(fill, _BORDER_COLOR)]), (0, 0), inside)
        rim = ImageChops.subtract(on_stroke, inside)
        tile.paste(stroke.point(luts[(_WHITE, _BORDER_COLOR)]), (0, 0), rim)
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
        font: _Font,
        centre_x: float,
        y: float,
        background: str,
        vertical: str = "middle",
    ) -> None:
        """Text centred on ``centre_x``, over pixels that are ``background``'s text base.

        ``vertical`` says what ``y`` is: the middle of the capitals (``middle``), their top
        (``top``) or the baseline (``baseline``).
        """
        cap_top, baseline = _cap_span(font)
        offset = {"middle": (cap_top + baseline) / 2, "top": cap_top, "baseline": baseline}
        glyphs = [_glyph(font, char) for char in text]
        x = round(centre_x - sum(glyph[3] for glyph in glyphs) / 2)
        y0 = round(y - offset[vertical])
        ink = self.palette.text_base[background] + _TEXT_LEVELS - 1
        pen = 0.0
        for mask, dx, dy, advance in glyphs:
            if mask is not None:
                self.draw.bitmap((x + round(pen) + dx, y0 + dy), mask, fill=ink)
            pen += advance

    # ----------------------------------------------------------------- edges

    def edges(self, routes: list[list[tuple[float, float]]]) -> None:
        """Anti-aliased polylines ending in arrowheads, drawn band by band."""
        width = self.line_width
        head_length = 5.5 * self.pt
        head_half = 2.4 * self.pt
        bands: dict[tuple[int, int], list[list[tuple[float, float]]]] = {}
        for route in routes:
            points = [self._snap(*self.px(x, y)) for x, y in route]
            for i, (a, b) in enumerate(itertools.pairwise(points)):
                last = i == len(points) - 2
                shapes = self._segment_shapes(a, b, width, last, head_length, head_half)
                key = (round(min(a[1], b[1])), round(max(a[1], b[1])))
                bands.setdefault(key, []).extend(shapes)
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

    @staticmethod
    def _segment_shapes(
        a: tuple[float, float],
        b: tuple[float, float],
        width: float,
        arrow: bool,
        head_length: float,
        head_half: float,
    ) -> list[list[tuple[float, float]]]:
        """Polygons (a circle is a many-sided one) inking segment ``a``-``b``."""
        dx, dy = b[0] - a[0], b[1] - a[1]
        length = math.hypot(dx, dy) or 1.0
        ux, uy = dx / length, dy / length
        shapes = []
        end = b
        if arrow:
            head = min(head_length, length * 0.6)
            end = (b[0] - ux * head * 0.8, b[1] - uy * head * 0.8)
            base = (b[0] - ux * head, b[1] - uy * head)
            shapes.append(
                [
                    b,
                    (base[0] - uy * head_half, base[1] + ux * head_half),
                    (base[0] + uy * head_half, base[1] - ux * head_half),
                ]
            )
        half = width / 2
        nx_, ny_ = -uy * half, ux * half
        shapes.append(
            [
                (a[0] + nx_, a[1] + ny_),
                (end[0] + nx_, end[1] + ny_),
                (end[0] - nx_, end[1] - ny_),
                (a[0] - nx_, a[1] - ny_),
            ]
        )
        # Round caps, so that bends at waypoints join without a notch.
        caps = [a] if arrow else [a, b]
        for cx, cy in caps:
            shapes.append(
                [
                    (cx + half * math.cos(t * math.pi / 6), cy + half * math.sin(t * math.pi / 6))
                    for t in range(12)
                ]
            )
        return shapes

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
        lut = self.palette.luts[(_WHITE, _EDGE_COLOR)]
        self.image.paste(cover.point(lut), box, cover.point(_NONZERO))

    # ----------------------------------------------------------------- output

    def save(self, path: Path) -> None:
        self.image.putpalette(self.palette.image_palette())
        self.image.save(path, format="PNG", compress_level=_PNG_COMPRESSION)


def _draw_tasks(canvas: _Canvas, graph: GraphLike, layout: _Layout) -> None:
    pt = canvas.pt
    radius = 0.08 * layout.scale * canvas.dpi
    pad = 0.08 * layout.scale * canvas.dpi
    for node, (x, y, w, h) in layout.boxes.items():
        left, top = canvas.px(x, y + h)
        right, bottom = canvas.px(x + w, y)
        x0, y0 = round(left), round(top)
        width, height = round(right) - x0, round(bottom) - y0
        status = _node_status(graph, node)
        canvas.box(x0, y0, width, height, status, radius)
        fill = STATUS_COLORS[status]
        room = width - 2 * pad
        centre_x, centre_y = x0 + width / 2, y0 + height / 2
        name, detail = str(node), _detail_line(graph, node)
        name_font = _fitting_font(name, _NAME_FONT_PT * pt, True, room)
        detail_font = _fitting_font(detail, _DETAIL_FONT_PT * pt, False, room)
        canvas.text(name, name_font, centre_x, centre_y - 0.19 * height, fill)
        canvas.text(detail, detail_font, centre_x, centre_y + 0.21 * height, fill)


def _draw_legend(canvas: _Canvas, layout: _Layout) -> None:
    """Swatch and label of every status, in three columns filled top to bottom."""
    pt = canvas.pt
    font_px = _LEGEND_FONT_PT * pt
    font = _font(font_px, False)
    statuses = list(Status)
    rows = math.ceil(len(statuses) / _LEGEND_COLUMNS)
    long_columns = len(statuses) % _LEGEND_COLUMNS or _LEGEND_COLUMNS
    columns: list[list[Status]] = []
    for c in range(_LEGEND_COLUMNS):
        take = rows if c < long_columns else rows - 1
        columns.append(statuses[sum(len(col) for col in columns) :][:take])
    swatch_w, swatch_h = round(2.0 * font_px), max(3, round(0.9 * font_px))
    text_pad, column_gap, row_pitch = 0.8 * font_px, 2.0 * font_px, 1.55 * font_px
    widths = [
        swatch_w + text_pad + max(_ink_span(font, _LEGEND_LABELS[s])[2] for s in col)
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
            label = _LEGEND_LABELS[status]
            label_left = x0 + swatch_w + text_pad
            span = _ink_span(font, label)
            canvas.text(label, font, label_left + (span[0] + span[2]) / 2, y_mid, _WHITE)
        x += col_width + column_gap


def _render(graph: GraphLike, layout: _Layout, title: str | None, dpi: int) -> _Canvas:
    """Draw the picture (not yet saved)."""
    canvas = _Canvas(layout, dpi)
    canvas.edges(list(layout.routes.values()))
    _draw_tasks(canvas, graph, layout)
    centre_x = layout.width * dpi / 2
    if title:
        font = _fitting_font(
            title, _TITLE_FONT_PT * canvas.pt, True, canvas.image.width - 2 * _MARGIN * dpi
        )
        canvas.text(title, font, centre_x, canvas.px(0, layout.title_y)[1], _WHITE, "top")
    if not layout.boxes:
        font = _font(_DETAIL_FONT_PT * canvas.pt * 1.2, False)
        baseline = canvas.px(0, _MARGIN * layout.scale)[1]
        canvas.text("(no tasks)", font, centre_x, baseline, _WHITE, "baseline")
    _draw_legend(canvas, layout)
    return canvas


def write_status_png(
    graph: GraphLike, path: str | os.PathLike[str], title: str | None = None
) -> Path:
    """Draw the DAG coloured by task status to a PNG file and return its path.

    The file holds PNG bytes whatever its suffix; missing parent folders are created.
    Raises ``ValueError`` if the graph has a cycle (before anything is written).
    """
    layout = _compute_layout(graph, title)
    canvas = _render(graph, layout, title, _dpi_for(layout.width, layout.height))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
