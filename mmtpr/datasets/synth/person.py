"""Drawing of one cartoon pedestrian from its attributes."""
from typing import Any, Dict, List, NamedTuple, Tuple

from .attributes import RGB
from .pen import _lerp, _Pen, _shade


class _Figure(NamedTuple):
    """Everything the body parts of one drawing share.

    Widths are in figure heights (see :class:`_Pen`): ``sw`` shoulders,
    ``ww`` waist, ``hw`` hips, ``hhw`` half the head, ``arm_w`` an arm,
    ``leg_top`` / ``leg_bot`` a leg at the hip / ankle. ``side`` is the
    image side (-1 or 1) of the shoulder bag.
    """
    attrs: Dict[str, Any]
    colors: Dict[str, RGB]
    front: bool
    side: int
    sw: float
    ww: float
    hw: float
    hhw: float
    arm_w: float
    leg_top: float
    leg_bot: float


_V_SHOULDER = 0.18  # the shoulder line


def _figure(ident: Dict[str, Any], pose: str) -> _Figure:
    """The proportions of an identity seen in ``pose``."""
    a = ident['attrs']
    r = ident['render']
    front = pose == 'front'
    b = r['build']
    if a['gender'] == 'man':
        sw, ww, hw, hhw, arm_w = 0.118 * b, 0.1 * b, 0.097 * b, 0.05, 0.046
        leg_top, leg_bot = 0.054 * b, 0.038
    else:
        sw, ww, hw, hhw, arm_w = 0.1 * b, 0.08 * b, 0.1 * b, 0.047, 0.038
        leg_top, leg_bot = 0.052 * b, 0.032
    if a['upper'] == 'jacket':  # a jacket is bulkier than a shirt
        sw, ww = sw + 0.008, ww + 0.008
    # Seen from the back, the person's left and right swap in the image.
    side = r['side'] if front else -r['side']
    return _Figure(a, r['colors'], front, side, sw, ww, hw, hhw, arm_w,
                   leg_top, leg_bot)


def _draw_person(pen: _Pen, ident: Dict[str, Any], pose: str, stride: float,
                 spread: float) -> None:
    """Draw one pedestrian, back to front in painter's order."""
    f = _figure(ident, pose)
    _draw_behind_body(pen, f)
    _draw_legs(pen, f, stride)
    _draw_lower_garment(pen, f)
    _draw_torso(pen, f)
    _draw_backpack_and_strap(pen, f)
    hands = _draw_arms(pen, f, spread)
    _draw_carried_bag(pen, f, hands)
    _draw_head(pen, f)
    _draw_hat(pen, f)


def _draw_behind_body(pen: _Pen, f: _Figure) -> None:
    """What the body hides from the front: backpack, hood, long hair."""
    if not f.front:
        return
    a, col, sw, hhw = f.attrs, f.colors, f.sw, f.hhw
    if a['bag'] == 'backpack':
        # Peeks out above the shoulders and beside the arms.
        pen.rrect(-sw - 0.05, 0.16, sw + 0.05, 0.45, col['bag_color'], 0.03)
    if a['upper'] == 'hoodie':
        pen.ellipse(-hhw - 0.03, 0.07, hhw + 0.03, 0.215, col['upper_color'])
    if a['hair_length'] == 'long':
        pen.rrect(-hhw - 0.018, 0.035, hhw + 0.018, 0.25, col['hair'], 0.03)


def _draw_legs(pen: _Pen, f: _Figure, stride: float) -> None:
    """Both legs with their trouser or bare-leg details, and the shoes."""
    lower = f.attrs['lower']
    lower_c = f.colors['lower_color']
    hw, leg_top, leg_bot = f.hw, f.leg_top, f.leg_bot
    hips = [(-hw * 0.5, 0.52), (hw * 0.5, 0.52)]
    ankles = [(-hw * 0.5 - 0.008 - stride, 0.935),
              (hw * 0.5 + 0.008 + stride, 0.935)]
    bare_legs = lower in ('shorts', 'skirt')
    for hip, ankle in zip(hips, ankles):
        pen.limb(hip, ankle, leg_top, leg_bot,
                 f.colors['skin'] if bare_legs else lower_c)
        if lower == 'shorts':
            pen.limb(hip, _lerp(hip, ankle, 0.33), leg_top * 1.25,
                     leg_top * 1.15, lower_c)
        elif lower == 'jeans':
            # Light outer seam and turned-up hems read as denim.
            out = 1 if ankle[0] > 0 else -1
            seam = _shade(lower_c, 1.35) if sum(lower_c) < 600 else _shade(
                lower_c, 0.8)
            pen.line_([(hip[0] + out * leg_top * 0.4, hip[1]),
                       (ankle[0] + out * leg_bot * 0.38, 0.9)], seam, 0.006)
            pen.limb(_lerp(hip, ankle, 0.92), ankle, leg_bot * 1.12,
                     leg_bot * 1.12, seam)
        else:
            pen.line_([_lerp(hip, ankle, 0.15), _lerp(hip, ankle, 0.95)],
                      _shade(lower_c, 0.8), 0.004)
        ux = ankle[0]
        pen.chord(ux - 0.042, 0.918, ux + 0.042, 1.062, 180, 360,
                  f.colors['shoes_color'])


def _draw_lower_garment(pen: _Pen, f: _Figure) -> None:
    """The skirt, or the seat of the trousers, jeans or shorts."""
    lower = f.attrs['lower']
    lower_c = f.colors['lower_color']
    ww, hw = f.ww, f.hw
    if lower == 'skirt':
        pen.poly([(-ww - 0.006, 0.465), (ww + 0.006, 0.465),
                  (hw + 0.06, 0.7), (-hw - 0.06, 0.7)], lower_c)
    else:
        pen.poly([(-ww, 0.465), (ww, 0.465), (hw + 0.004, 0.56),
                  (-hw - 0.004, 0.56)], lower_c)
        if lower == 'jeans':
            pen.rrect(-ww, 0.465, ww, 0.485, _shade(lower_c, 0.7), 0.004)


def _draw_torso(pen: _Pen, f: _Figure) -> None:
    """Neck, torso and the details of the upper garment."""
    upper = f.attrs['upper']
    upper_c = f.colors['upper_color']
    skin = f.colors['skin']
    sw, ww, hw = f.sw, f.ww, f.hw
    pen.rrect(-0.022, 0.13, 0.022, 0.2, skin, 0.01)  # neck
    hem = 0.5 if upper != 'jacket' else 0.51
    if upper == 'coat':
        torso = [(-sw + 0.025, _V_SHOULDER), (sw - 0.025, _V_SHOULDER),
                 (sw + 0.004, 0.21), (hw + 0.035, 0.75),
                 (-hw - 0.035, 0.75), (-sw - 0.004, 0.21)]
    else:
        torso = [(-sw + 0.025, _V_SHOULDER), (sw - 0.025, _V_SHOULDER),
                 (sw, 0.21), (ww, hem), (-ww, hem), (-sw, 0.21)]
    pen.poly(torso, upper_c)
    dark = _shade(upper_c, 0.6) if sum(upper_c) > 120 else _shade(
        upper_c, 2.6)
    if f.front:
        _draw_upper_front(pen, upper, upper_c, dark, skin, ww, hw)
    elif upper == 'hoodie':
        pen.chord(-0.07, 0.14, 0.07, 0.29, 0, 180, _shade(upper_c, 0.85))
    elif upper == 'coat':
        pen.line_([(0, 0.6), (0, 0.75)], dark, 0.006)
    if upper == 'sweater':
        # Knit ribbing: hem band and faint horizontal courses.
        pen.rrect(-ww, 0.47, ww, 0.5, _shade(upper_c, 0.82), 0.004)
        for v in (0.26, 0.32, 0.38, 0.44):
            pen.line_([(-sw + 0.02, v), (sw - 0.02, v)],
                      _shade(upper_c, 0.82), 0.004)


def _draw_backpack_and_strap(pen: _Pen, f: _Figure) -> None:
    """A backpack seen from behind, its straps from the front, or the
    strap of a shoulder bag; all over the torso, under the arms."""
    bag = f.attrs['bag']
    if bag == 'none':
        return
    bc = f.colors['bag_color']
    sw, v_s = f.sw, _V_SHOULDER
    if bag == 'backpack' and not f.front:
        pen.rrect(-sw + 0.012, 0.19, sw - 0.012, 0.47, bc, 0.03)
        pen.rrect(-0.06, 0.35, 0.06, 0.45, _shade(bc, 0.85), 0.015)
    elif bag == 'backpack':
        for s in (-1, 1):
            pen.limb((s * (sw - 0.04), v_s - 0.003), (s * (sw - 0.05), 0.42),
                     0.026, 0.024, bc)
        pen.line_([(-(sw - 0.05), 0.3), (sw - 0.05, 0.3)], bc, 0.012)
    if bag == 'shoulder bag':
        pen.line_([(-f.side * (sw - 0.03), v_s + 0.004),
                   (f.side * (f.hw + 0.012), 0.455)], bc, 0.016)


def _draw_arms(pen: _Pen, f: _Figure,
               spread: float) -> List[Tuple[float, float]]:
    """Both arms with their sleeves and hands; returns the hand centres."""
    upper = f.attrs['upper']
    upper_c = f.colors['upper_color']
    skin = f.colors['skin']
    sw, arm_w = f.sw, f.arm_w
    hands = []
    for s in (-1, 1):
        shoulder = (s * (sw - 0.014), _V_SHOULDER + 0.022)
        wrist = (s * (sw + 0.018 + spread), 0.475)
        long_sleeve = upper != 't-shirt'
        pen.limb(shoulder, wrist, arm_w, arm_w * 0.8,
                 upper_c if long_sleeve else skin)
        if not long_sleeve:
            pen.limb(shoulder, _lerp(shoulder, wrist, 0.34), arm_w * 1.3,
                     arm_w * 1.2, upper_c)
        elif upper in ('sweater', 'shirt'):
            pen.limb(_lerp(shoulder, wrist, 0.9), wrist, arm_w * 0.85,
                     arm_w * 0.82, _shade(upper_c, 0.82))
        hands.append((wrist[0], wrist[1] + 0.015))
    for hx, hy in hands:
        _draw_hand(pen, f, hx, hy)
    return hands


def _draw_hand(pen: _Pen, f: _Figure, hx: float, hy: float) -> None:
    hand_r = f.arm_w * 0.5
    pen.ellipse(hx - hand_r, hy - hand_r * 1.2, hx + hand_r,
                hy + hand_r * 1.2, f.colors['skin'])


def _draw_carried_bag(pen: _Pen, f: _Figure,
                      hands: List[Tuple[float, float]]) -> None:
    """A handbag in one hand (the hand drawn again over its handle) or a
    shoulder bag at the hip."""
    bag = f.attrs['bag']
    if bag == 'handbag':
        hx, hy = hands[0 if f.side < 0 else 1]
        bc = f.colors['bag_color']
        pen.draw.arc(pen.box(hx - 0.028, hy - 0.01, hx + 0.028, hy + 0.07),
                     180, 360, fill=_shade(bc, 0.6),
                     width=max(1, int(0.008 * pen.fh)))
        pen.poly([(hx - 0.042, hy + 0.03), (hx + 0.042, hy + 0.03),
                  (hx + 0.052, hy + 0.125), (hx - 0.052, hy + 0.125)], bc)
        _draw_hand(pen, f, hx, hy)
    elif bag == 'shoulder bag':
        bx = f.side * (f.hw + 0.02)
        bc = f.colors['bag_color']
        pen.rrect(bx - 0.052, 0.44, bx + 0.052, 0.56, bc, 0.012)
        pen.line_([(bx - 0.052, 0.48), (bx + 0.052, 0.48)], _shade(bc, 0.6),
                  0.005)


def _draw_head(pen: _Pen, f: _Figure) -> None:
    """Face or back of the head, with the hair."""
    hhw, hair = f.hhw, f.colors['hair']
    long_hair = f.attrs['hair_length'] == 'long'
    pen.ellipse(-hhw, 0.03, hhw, 0.155, f.colors['skin'])
    if not f.front:
        pen.ellipse(-hhw - 0.004, 0.024, hhw + 0.004, 0.13, hair)
        if long_hair:
            pen.rrect(-hhw - 0.02, 0.07, hhw + 0.02, 0.285, hair, 0.025)
        return
    pen.chord(-hhw - 0.005, 0.022, hhw + 0.005, 0.12, 180, 360, hair)
    for s in (-1, 1):
        pen.rrect(s * (hhw + 0.004), 0.06, s * (hhw - 0.012), 0.095, hair,
                  0.004)
        # Eyes: make the facing direction visible.
        pen.ellipse(s * 0.018 - 0.006, 0.09, s * 0.018 + 0.006, 0.1,
                    (40, 30, 30), outline=False)
    if long_hair:
        for s in (-1, 1):
            pen.poly([(s * (hhw - 0.01), 0.06), (s * (hhw + 0.02), 0.07),
                      (s * (hhw + 0.026), 0.27), (s * (hhw - 0.006), 0.25)],
                     hair)


def _draw_hat(pen: _Pen, f: _Figure) -> None:
    """A cap (peak towards the camera or a band behind) or a brimmed hat."""
    hat, hhw = f.attrs['hat'], f.hhw
    if hat == 'cap':
        hc = f.colors['hat_color']
        pen.chord(-hhw - 0.007, 0.016, hhw + 0.007, 0.14, 180, 360, hc)
        if f.front:
            pen.ellipse(-hhw - 0.014, 0.06, hhw + 0.014, 0.09,
                        _shade(hc, 0.8))
        else:
            pen.line_([(-hhw, 0.07), (hhw, 0.07)], _shade(hc, 0.7), 0.006)
    elif hat == 'hat':
        hc = f.colors['hat_color']
        pen.rrect(-hhw + 0.004, 0.0, hhw - 0.004, 0.07, hc, 0.015)
        pen.ellipse(-hhw - 0.05, 0.048, hhw + 0.05, 0.082, hc)
        pen.rrect(-hhw + 0.004, 0.042, hhw - 0.004, 0.056, _shade(hc, 0.6),
                  0.002)


def _draw_upper_front(pen: _Pen, upper: str, upper_c: RGB, dark: RGB,
                      skin: RGB, ww: float, hw: float) -> None:
    """Garment details that only show from the front."""
    if upper == 't-shirt':
        pen.chord(-0.032, 0.15, 0.032, 0.215, 0, 180, skin)
    elif upper == 'shirt':
        pen.line_([(0, 0.2), (0, 0.5)], dark, 0.005)
        for v in (0.25, 0.31, 0.37, 0.43):
            pen.ellipse(-0.005, v - 0.005, 0.005, v + 0.005, dark,
                        outline=False)
        for s in (-1, 1):
            pen.poly([(s * 0.002, 0.205), (s * 0.036, 0.172),
                      (s * 0.03, 0.215)], _shade(upper_c, 0.85))
    elif upper == 'jacket':
        pen.rrect(-0.036, 0.165, 0.036, 0.195, _shade(upper_c, 0.8), 0.006)
        pen.line_([(0, 0.19), (0, 0.51)], dark, 0.007)
        pen.rrect(-ww, 0.485, ww, 0.51, _shade(upper_c, 0.8), 0.004)
    elif upper == 'coat':
        for s in (-1, 1):
            pen.line_([(s * 0.05, 0.18), (s * 0.01, 0.32)], dark, 0.006)
            for v in (0.36, 0.45, 0.54):
                pen.ellipse(s * 0.03 - 0.006, v - 0.006, s * 0.03 + 0.006,
                            v + 0.006, dark, outline=False)
        pen.line_([(0, 0.32), (0, 0.75)], dark, 0.004)
    elif upper == 'sweater':
        pen.chord(-0.034, 0.15, 0.034, 0.215, 0, 180, _shade(upper_c, 0.82))
        pen.chord(-0.026, 0.15, 0.026, 0.205, 0, 180, skin)
    elif upper == 'hoodie':
        pen.poly([(-0.07, 0.38), (0.07, 0.38), (0.085, 0.47),
                  (-0.085, 0.47)], _shade(upper_c, 0.85))
        light = _shade(upper_c, 1.6) if sum(upper_c) < 450 else dark
        for s in (-1, 1):
            pen.line_([(s * 0.02, 0.2), (s * 0.022, 0.28)], light, 0.006)
