"""Shields-style flat SVG badges: "<package> | <version>", text XML-escaped."""

from __future__ import annotations

from xml.sax.saxutils import escape

__all__ = ["badge_svg"]

_LABEL_COLOUR = "#555"
_VALUE_COLOUR = "#97CA00"
_MISSING_COLOUR = "#9f9f9f"
# Verdana 11px advance widths, roughly: narrow, wide, everything else.
_NARROW = set("fijlrt.,:;!|'()[] ")
_WIDE = set("mwMW@%")


def _text_width(text: str) -> int:
    width = 0.0
    for ch in text:
        width += 4.0 if ch in _NARROW else 10.0 if ch in _WIDE else 7.0
    return int(width) + 10  # 5 px padding each side


def badge_svg(label: str, value: str | None) -> str:
    """An SVG badge; `value` None reads "not installed" on grey."""
    shown = value if value is not None else "not installed"
    colour = _VALUE_COLOUR if value is not None else _MISSING_COLOUR
    lw, vw = _text_width(label), _text_width(shown)
    total = lw + vw
    lab, val = escape(label), escape(shown)
    title = escape(f"{label}: {shown}")
    font = 'font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"'
    shadow = 'fill="#010101" fill-opacity=".3"'
    lx, vx = f"{lw / 2:g}", f"{lw + vw / 2:g}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img"'
        f' aria-label="{title}">',
        f"<title>{title}</title>",
        '<linearGradient id="s" x2="0" y2="100%">'
        '<stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>',
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>',
        f'<g clip-path="url(#r)"><rect width="{lw}" height="20" fill="{_LABEL_COLOUR}"/>'
        f'<rect x="{lw}" width="{vw}" height="20" fill="{colour}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>',
        f'<g fill="#fff" text-anchor="middle" {font}>',
        f'<text x="{lx}" y="15" {shadow}>{lab}</text><text x="{lx}" y="14">{lab}</text>',
        f'<text x="{vx}" y="15" {shadow}>{val}</text><text x="{vx}" y="14">{val}</text>',
        "</g>",
        "</svg>",
    ]
    return "\n".join(parts) + "\n"
