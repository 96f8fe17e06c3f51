"""Drawing of one cartoon pedestrian from its attributes."""
from typing import Any, Dict

from .attributes import RGB
from .pen import _lerp, _Pen, _shade


def _draw_person(pen: _Pen, ident: Dict[str, Any], pose: str, stride: float,
                 spread: float) -> None:
    """Draw one pedestrian, back to front in painter's order."""
    a = ident['attrs']
    r = ident['render']
    col = r['colors']
    skin, hair = col['skin'], col['hair']
    upper_c = col['upper_color']
    lower_c = col['lower_color']
    front = pose == 'front'
    # Seen from the back, the person's left and right swap in the image.
    side = r['side'] if front else -r['side']
    b = r['build']
    if a['gender'] == 'man':
        sw, ww, hw, hhw, arm_w = 0.118 * b, 0.1 * b, 0.097 * b, 0.05, 0.046
        leg_top, leg_bot = 0.054 * b, 0.038
    else:
        sw, ww, hw, hhw, arm_w = 0.1 * b, 0.08 * b, 0.1 * b, 0.047, 0.038
        leg_top, leg_bot = 0.052 * b, 0.032
    v_s = 0.18  # shoulder line
    head = (-hhw, 0.03, hhw, 0.155)
    upper = a['upper']
    lower = a['lower']
    bag = a['bag']
    if upper == 'jacket':  # a jacket is bulkier than a shirt
        sw, ww = sw + 0.008, ww + 0.008

    # --- behind the body --------------------------------------------------
    if bag == 'backpack' and front:
        # Peeks out above the shoulders and beside the arms.
        pen.rrect(-sw - 0.05, 0.16, sw + 0.05, 0.45, col['bag_color'], 0.03)
    if upper == 'hoodie' and front:
        pen.ellipse(-hhw - 0.03, 0.07, hhw + 0.03, 0.215, upper_c)
    if a['hair_length'] == 'long' and front:
        pen.rrect(-hhw - 0.018, 0.035, hhw + 0.018, 0.25, hair, 0.03)

    # --- legs, shoes and lower garment -----------------------------------
    hips = [(-hw * 0.5, 0.52), (hw * 0.5, 0.52)]
    ankles = [(-hw * 0.5 - 0.008 - stride, 0.935),
              (hw * 0.5 + 0.008 + stride, 0.935)]
    bare_legs = lower in ('shorts', 'skirt')
    for hip, ankle in zip(hips, ankles):
        pen.limb(hip, ankle, leg_top, leg_bot, skin if bare_legs else lower_c)
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
                  col['shoes_color'])
    if lower == 'skirt':
        pen.poly([(-ww - 0.006, 0.465), (ww + 0.006, 0.465),
                  (hw + 0.06, 0.7), (-hw - 0.06, 0.7)], lower_c)
    else:
        pen.poly([(-ww, 0.465), (ww, 0.465), (hw + 0.004, 0.56),
                  (-hw - 0.004, 0.56)], lower_c)
        if lower == 'jeans':
            pen.rrect(-ww, 0.465, ww, 0.485, _shade(lower_c, 0.7), 0.004)

    # --- torso -----------------------------------------------------------
    pen.rrect(-0.022, 0.13, 0.022, 0.2, skin, 0.01)  # neck
    hem = 0.5 if upper != 'jacket' else 0.51
    if upper == 'coat':
        torso = [(-sw + 0.025, v_s), (sw - 0.025, v_s), (sw + 0.004, 0.21),
                 (hw + 0.035, 0.75), (-hw - 0.035, 0.75), (-sw - 0.004, 0.21)]
    else:
        torso = [(-sw + 0.025, v_s), (sw - 0.025, v_s), (sw, 0.21),
                 (ww, hem), (-ww, hem), (-sw, 0.21)]
    pen.poly(torso, upper_c)
    dark = _shade(upper_c, 0.6) if sum(upper_c) > 120 else _shade(
        upper_c, 2.6)
    if front:
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

    if bag == 'backpack' and not front:
        pen.rrect(-sw + 0.012, 0.19, sw - 0.012, 0.47, col['bag_color'], 0.03)
        pen.rrect(-0.06, 0.35, 0.06, 0.45, _shade(col['bag_color'], 0.85),
                  0.015)
    elif bag == 'backpack':
        for s in (-1, 1):
            pen.limb((s * (sw - 0.04), v_s - 0.003), (s * (sw - 0.05), 0.42),
                     0.026, 0.024, col['bag_color'])
        pen.line_([(-(sw - 0.05), 0.3), (sw - 0.05, 0.3)], col['bag_color'],
                  0.012)
    if bag == 'shoulder bag':
        pen.line_([(-side * (sw - 0.03), v_s + 0.004),
                   (side * (hw + 0.012), 0.455)], col['bag_color'], 0.016)

    # --- arms ------------------------------------------------------------
    hands = []
    for s in (-1, 1):
        shoulder = (s * (sw - 0.014), v_s + 0.022)
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
    hand_r = arm_w * 0.5
    for hx, hy in hands:
        pen.ellipse(hx - hand_r, hy - hand_r * 1.2, hx + hand_r,
                    hy + hand_r * 1.2, skin)

    if bag == 'handbag':
        hx, hy = hands[0 if side < 0 else 1]
        bc = col['bag_color']
        pen.draw.arc(pen.box(hx - 0.028, hy - 0.01, hx + 0.028, hy + 0.07),
                     180, 360, fill=_shade(bc, 0.6),
                     width=max(1, int(0.008 * pen.fh)))
        pen.poly([(hx - 0.042, hy + 0.03), (hx + 0.042, hy + 0.03),
                  (hx + 0.052, hy + 0.125), (hx - 0.052, hy + 0.125)], bc)
        pen.ellipse(hx - hand_r, hy - hand_r * 1.2, hx + hand_r,
                    hy + hand_r * 1.2, skin)
    elif bag == 'shoulder bag':
        bx = side * (hw + 0.02)
        bc = col['bag_color']
        pen.rrect(bx - 0.052, 0.44, bx + 0.052, 0.56, bc, 0.012)
        pen.line_([(bx - 0.052, 0.48), (bx + 0.052, 0.48)], _shade(bc, 0.6),
                  0.005)

    # --- head, hair and hat ----------------------------------------------
    pen.ellipse(*head, skin)
    if front:
        pen.chord(-hhw - 0.005, 0.022, hhw + 0.005, 0.12, 180, 360, hair)
        for s in (-1, 1):
            pen.rrect(s * (hhw + 0.004), 0.06, s * (hhw - 0.012), 0.095,
                      hair, 0.004)
            # Eyes: make the facing direction visible.
            pen.ellipse(s * 0.018 - 0.006, 0.09, s * 0.018 + 0.006, 0.1,
                        (40, 30, 30), outline=False)
        if a['hair_length'] == 'long':
            for s in (-1, 1):
                pen.poly([(s * (hhw - 0.01), 0.06),
                          (s * (hhw + 0.02), 0.07),
                          (s * (hhw + 0.026), 0.27),
                          (s * (hhw - 0.006), 0.25)], hair)
    else:
        pen.ellipse(-hhw - 0.004, 0.024, hhw + 0.004, 0.13, hair)
        if a['hair_length'] == 'long':
            pen.rrect(-hhw - 0.02, 0.07, hhw + 0.02, 0.285, hair, 0.025)
    if a['hat'] == 'cap':
        hc = col['hat_color']
        pen.chord(-hhw - 0.007, 0.016, hhw + 0.007, 0.14, 180, 360, hc)
        if front:
            pen.ellipse(-hhw - 0.014, 0.06, hhw + 0.014, 0.09,
                        _shade(hc, 0.8))
        else:
            pen.line_([(-hhw, 0.07), (hhw, 0.07)], _shade(hc, 0.7), 0.006)
    elif a['hat'] == 'hat':
        hc = col['hat_color']
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
