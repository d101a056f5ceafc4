"""Text for the status picture: DejaVu Sans (Pillow's own font where it is missing), set from
cached glyphs, since rasterising every string anew costs more than the rest of the picture.
"""

from __future__ import annotations

import functools

from PIL import Image, ImageDraw, ImageFont

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
# Basic layout: hinted whole-pixel advances, so glyphs set one by one space evenly.
_BASIC_LAYOUT = getattr(getattr(ImageFont, "Layout", None), "BASIC", 0)


@functools.cache
def load_font(size: float, bold: bool) -> Font:
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


def ink_span(font: Font, text: str) -> tuple[int, ...]:
    """``(left, top, right, bottom)`` of ``text`` drawn at the origin."""
    try:
        return tuple(font.getbbox(text))
    except AttributeError:  # bitmap fonts of Pillow < 9.2
        width, height = font.getsize(text)  # type: ignore[union-attr]
        return (0, 0, width, height)


@functools.lru_cache(maxsize=8192)
def glyph(font: Font, char: str) -> tuple[Image.Image | None, int, int, float]:
    """Coverage mask of one character, its offset from the pen position, and its advance.

    Text is set from these cached glyphs: rasterising (and hinting) every string anew costs
    far more than the rest of the picture.
    """
    try:
        advance = float(font.getlength(char))
    except AttributeError:  # bitmap fonts of Pillow < 9.2
        advance = float(font.getsize(char)[0])  # type: ignore[union-attr]
    left, top, right, bottom = ink_span(font, char)
    if right <= left or bottom <= top:
        return None, 0, 0, advance
    mask = Image.new("L", (right - left, bottom - top), 0)
    ImageDraw.Draw(mask).text((-left, -top), char, font=font, fill=255)
    return mask, left, top, advance


def set_width(font: Font, text: str) -> float:
    """Width in pixels of ``text`` set from cached glyphs."""
    return sum(glyph(font, char)[3] for char in text)


@functools.lru_cache(maxsize=256)
def cap_span(font: Font) -> tuple[int, int]:
    """Top and bottom (the baseline) of a capital letter, below the drawing origin."""
    _, top, _, bottom = ink_span(font, "H")
    return top, bottom


def fitting_font(text: str, size: float, bold: bool, max_width: float) -> Font:
    """The font at ``size``, or smaller until ``text`` is at most ``max_width`` wide."""
    font = load_font(size, bold)
    for _ in range(4):
        width = set_width(font, text)
        if width <= max_width or size <= 4:
            break
        size = max(4.0, round(size * max_width / width - 0.25, 1))
        font = load_font(size, bold)
    return font
