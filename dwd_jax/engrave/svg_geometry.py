"""The two SVG micro-syntaxes verovio uses: transform lists and path data.

Shared by the renderer (`raster`) and the boxer (`svg_symbols`) so both read the page the same
way.
"""

from __future__ import annotations

import math
import re

Affine = tuple[float, float, float, float, float, float]  # (a, b, c, d, e, f) as in matrix()
IDENTITY: Affine = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)

_TOKEN = re.compile(r"[A-Za-z]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_ARITY = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "Z": 0}


def compose(m: Affine, t: Affine) -> Affine:
    """The affine map applying `t` first, then `m`."""
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = t
    return (a * a2 + c * b2, b * a2 + d * b2, a * c2 + c * d2, b * c2 + d * d2,
            a * e2 + c * f2 + e, b * e2 + d * f2 + f)


def parse_transform(text: str | None) -> Affine:
    """An SVG `transform` attribute (translate, scale, rotate, matrix) as one affine map."""
    m = IDENTITY
    for op, args in re.findall(r"(\w+)\s*\(([^)]*)\)", text or ""):
        v = [float(x) for x in re.split(r"[\s,]+", args.strip()) if x]
        if op == "translate":
            t = (1.0, 0.0, 0.0, 1.0, v[0], v[1] if len(v) > 1 else 0.0)
        elif op == "scale":
            t = (v[0], 0.0, 0.0, v[1] if len(v) > 1 else v[0], 0.0, 0.0)
        elif op == "matrix":
            t = tuple(v)
        elif op == "rotate":
            r = math.radians(v[0])
            cx, cy = (v[1], v[2]) if len(v) == 3 else (0.0, 0.0)
            co, si = math.cos(r), math.sin(r)
            t = (co, si, -si, co, cx - co * cx + si * cy, cy - si * cx - co * cy)
        else:
            raise ValueError(f"unsupported SVG transform {op!r} in {text!r}")
        m = compose(m, t)
    return m


def parse_numbers(text: str | None) -> list[float]:
    """A whitespace/comma-separated number list (`points`, `stroke-dasharray`)."""
    return [float(t) for t in re.split(r"[\s,]+", (text or "").strip()) if t]


def path_commands(d: str) -> list[tuple]:
    """SVG path data as absolute ("M", x, y), ("L", x, y), ("C", x1, y1, x2, y2, x, y), ("Z",).

    Handles M L H V C S Q Z in both absolute and relative (lower-case) forms: verovio writes
    page geometry absolute and its font outlines relative. Quadratics become cubics.
    """
    tokens = _TOKEN.findall(d)
    out: list[tuple] = []
    i, cmd = 0, ""
    x = y = sx = sy = 0.0  # current point, subpath start
    ctrl = None  # second control point of the previous cubic (for S)
    while i < len(tokens):
        if tokens[i].isalpha():
            cmd, i = tokens[i], i + 1
        up = cmd.upper()
        if up not in _ARITY:
            raise ValueError(f"unsupported SVG path command {cmd!r} in {d[:60]!r}")
        if up == "Z":
            out.append(("Z",))
            x, y, ctrl = sx, sy, None
            continue
        v = [float(t) for t in tokens[i:i + _ARITY[up]]]
        i += _ARITY[up]
        ox, oy = (x, y) if cmd.islower() else (0.0, 0.0)
        if up == "M":
            x, y = sx, sy = v[0] + ox, v[1] + oy
            out.append(("M", x, y))
            cmd = "l" if cmd.islower() else "L"  # further pairs are line-tos
        elif up in "LHV":
            x = v[0] + ox if up in "LH" else x
            y = (v[1] if up == "L" else v[0]) + oy if up in "LV" else y
            out.append(("L", x, y))
        elif up == "Q":
            qx, qy = v[0] + ox, v[1] + oy
            x0, y0, x, y = x, y, v[2] + ox, v[3] + oy
            out.append(("C", x0 + 2 / 3 * (qx - x0), y0 + 2 / 3 * (qy - y0),
                        x + 2 / 3 * (qx - x), y + 2 / 3 * (qy - y), x, y))
        else:  # C or S
            if up == "C":
                x1, y1, v = v[0] + ox, v[1] + oy, v[2:]
            else:
                x1, y1 = (2 * x - ctrl[0], 2 * y - ctrl[1]) if ctrl else (x, y)
            x2, y2, x, y = v[0] + ox, v[1] + oy, v[2] + ox, v[3] + oy
            out.append(("C", x1, y1, x2, y2, x, y))
            ctrl = (x2, y2)
            continue
        ctrl = None
    return out
