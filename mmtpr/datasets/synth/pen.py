"""Drawing primitives in figure coordinates, on top of PIL's ImageDraw."""
import functools
from typing import List, Sequence, Tuple

from PIL import ImageDraw

from .attributes import RGB


# ---------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def _shade(rgb: RGB, factor: float) -> RGB:
    return tuple(int(min(255, max(0, round(c * factor)))) for c in rgb)


class _Pen:
    """Draws in figure coordinates.

    ``u`` is the horizontal offset from the body axis and ``v`` the height
    from the top of the figure, both in units of the figure height, so the
    body layout is independent of image size, scale and shift.
    """

    def __init__(self, draw: ImageDraw.ImageDraw, cx: float, y0: float,
                 fh: float, line: int):
        self.draw = draw
        self.cx, self.y0, self.fh = cx, y0, fh
        self.line = line

    def pt(self, u: float, v: float) -> Tuple[float, float]:
        return (self.cx + u * self.fh, self.y0 + v * self.fh)

    def box(self, u0: float, v0: float, u1: float,
            v1: float) -> List[float]:
        (x0, y0), (x1, y1) = self.pt(u0, v0), self.pt(u1, v1)
        return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]

    def poly(self, pts: Sequence[Tuple[float, float]], fill: RGB,
             outline: bool = True) -> None:
        # A darker outline separates touching garments of similar colour
        # and the figure from the background.
        xy = [self.pt(u, v) for u, v in pts]
        self.draw.polygon(xy, fill=fill)
        if outline:
            # A closed wide line: polygon(width > 1) renders through a
            # temporary mask and is several times slower.
            self.draw.line(xy + xy[:1], fill=_shade(fill, 0.55),
                           width=self.line)

    def ellipse(self, u0, v0, u1, v1, fill: RGB,
                outline: bool = True) -> None:
        self.draw.ellipse(self.box(u0, v0, u1, v1), fill=fill,
                          outline=_shade(fill, 0.55) if outline else None,
                          width=self.line)

    def chord(self, u0, v0, u1, v1, start: float, end: float,
              fill: RGB) -> None:
        self.draw.chord(self.box(u0, v0, u1, v1), start, end, fill=fill,
                        outline=_shade(fill, 0.55), width=self.line)

    def rrect(self, u0, v0, u1, v1, fill: RGB, radius: float = 0.01) -> None:
        """A rectangle with chamfered corners.

        Indistinguishable from round corners at this resolution and several
        times faster than ``ImageDraw.rounded_rectangle``.
        """
        u0, u1 = min(u0, u1), max(u0, u1)
        r = min(radius, (u1 - u0) / 2, (v1 - v0) / 2)
        self.poly([(u0 + r, v0), (u1 - r, v0), (u1, v0 + r), (u1, v1 - r),
                   (u1 - r, v1), (u0 + r, v1), (u0, v1 - r), (u0, v0 + r)],
                  fill)

    def line_(self, pts: Sequence[Tuple[float, float]], fill: RGB,
              width: float) -> None:
        self.draw.line([self.pt(u, v) for u, v in pts], fill=fill,
                       width=max(1, int(round(width * self.fh))))

    def limb(self, p0: Tuple[float, float], p1: Tuple[float, float],
             w0: float, w1: float, fill: RGB) -> None:
        """A tapered quad from ``p0`` (width ``w0``) to ``p1``."""
        (u0, v0), (u1, v1) = p0, p1
        du, dv = u1 - u0, v1 - v0
        norm = max((du * du + dv * dv)**0.5, 1e-6)
        nu, nv = -dv / norm, du / norm
        self.poly([(u0 + nu * w0 / 2, v0 + nv * w0 / 2),
                   (u1 + nu * w1 / 2, v1 + nv * w1 / 2),
                   (u1 - nu * w1 / 2, v1 - nv * w1 / 2),
                   (u0 - nu * w0 / 2, v0 - nv * w0 / 2)], fill)


def _lerp(p0: Tuple[float, float], p1: Tuple[float, float],
          t: float) -> Tuple[float, float]:
    return (p0[0] + (p1[0] - p0[0]) * t, p0[1] + (p1[1] - p0[1]) * t)
