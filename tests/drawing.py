"""Test pages drawn from exact geometry, anti-aliased as a rasteriser would."""

import numpy as np

SUPER = 8  # Supersampling: a pixel's darkness is its exact ink coverage to 1/64.


def draw(shape, rects=(), ellipses=(), beams=()):
    """u8 page with the given shapes in ink, anti-aliased by box-filtering an 8x raster.

    rects: (y0, x0, y1, x1) in page pixels, multiples of 1/8; ellipses: (cy, cx, ry, rx);
    beams: (x0, x1, top y at x0, top y at x1, thickness), parallelograms with vertical ends.
    """
    h, w = shape
    yy, xx = np.mgrid[0 : h * SUPER, 0 : w * SUPER]
    yy, xx = (yy + 0.5) / SUPER, (xx + 0.5) / SUPER
    ink_ = np.zeros((h * SUPER, w * SUPER), bool)
    for y0, x0, y1, x1 in rects:
        ink_ |= (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)
    for cy, cx, ry, rx in ellipses:
        ink_ |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    for x0, x1, t0, t1, thick in beams:
        top = t0 + (t1 - t0) * (xx - x0) / (x1 - x0)
        ink_ |= (xx >= x0) & (xx < x1) & (yy >= top) & (yy < top + thick)
    coverage = ink_.reshape(h, SUPER, w, SUPER).mean(axis=(1, 3))
    return np.round(255 * (1 - coverage)).astype(np.uint8)
