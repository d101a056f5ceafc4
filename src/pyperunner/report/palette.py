"""The fixed palette of the status picture.

The picture is drawn straight into an 8-bit palette image: it is a third the size of an
RGB one to fill and to compress, which is what keeps a tall 200-task picture fast. Smooth
edges come from colour ramps in the palette. Each ramp from a background colour to the
text colour takes contiguous indices, so text drawn with the ramp's last index over its
first is blended by Pillow into exactly the right ramp entries; other ramps (white to a
box fill, a fill to the border, white to the border or to the edges) are reached through
lookup tables from the coverage (0-255) of shapes drawn at a higher resolution.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from .layout import STATUS_COLORS

EDGE_COLOR = "#555555"
BORDER_COLOR = "#444444"
WHITE = "#ffffff"
TEXT_COLOR = "#1a1a1a"
TEXT_LEVELS = 16  # entries in a background-to-text ramp, both ends included
SHAPE_LEVELS = 9  # entries in any other ramp, both ends included


def _rgb(colour: str) -> tuple[int, int, int]:
    return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16))


def _mix(low: str, high: str, t: float) -> tuple[int, int, int]:
    return tuple(round(a + (b - a) * t) for a, b in zip(_rgb(low), _rgb(high), strict=True))


@dataclass
class Palette:
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
        for k in range(1, SHAPE_LEVELS - 1):
            steps.append(len(self.colours))
            self.colours.append(_mix(low, high, k / (SHAPE_LEVELS - 1)))
        steps.append(high_index)
        lut = [steps[round(c * (SHAPE_LEVELS - 1) / 255)] for c in range(256)]
        self.luts[(low, high)] = lut
        return lut

    def image_palette(self) -> list[int]:
        flat = [channel for colour in self.colours for channel in colour]
        return flat + [0] * (768 - len(flat))


@functools.cache
def status_palette() -> Palette:
    """The palette every status picture is drawn with: made once per process."""
    palette = Palette()
    for background in (WHITE, *STATUS_COLORS.values()):  # white first: index 0
        palette.text_base[background] = len(palette.colours)
        palette.colours += [
            _mix(background, TEXT_COLOR, k / (TEXT_LEVELS - 1)) for k in range(TEXT_LEVELS)
        ]
    border, edge = len(palette.colours), len(palette.colours) + 1
    palette.colours += [_rgb(BORDER_COLOR), _rgb(EDGE_COLOR)]
    white = palette.text_base[WHITE]
    for fill in STATUS_COLORS.values():
        palette.add_ramp(WHITE, fill, white, palette.text_base[fill])
        palette.add_ramp(fill, BORDER_COLOR, palette.text_base[fill], border)
    palette.add_ramp(WHITE, BORDER_COLOR, white, border)
    edge_lut = palette.add_ramp(WHITE, EDGE_COLOR, white, edge)
    palette.edge_coverage = [0] * 256
    for coverage in range(255, -1, -1):  # the lowest coverage giving each index
        palette.edge_coverage[edge_lut[coverage]] = coverage
    palette.edge_coverage[white] = 0
    assert len(palette.colours) <= 256
    return palette
