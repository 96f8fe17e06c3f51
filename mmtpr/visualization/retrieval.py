"""Pictures of ranked retrieval results: the query above its top-k.

Pure drawing (Pillow); :class:`~mmtpr.visualization.TPRVisualizer` sends
the pictures to files and to MMEngine's vis backends. Gallery images are
read through :func:`mmtpr.utils.image_io.read_image` (bounded regular
files only).
"""
import io
import textwrap
from typing import List, Optional, Sequence, Tuple

from PIL import Image, ImageDraw, ImageFont

from mmtpr.utils.fileio import atomic_write_bytes
from mmtpr.utils.image_io import read_image

MATCH_COLOR = (0, 170, 0)
MISMATCH_COLOR = (220, 30, 30)
UNKNOWN_COLOR = (200, 200, 200)
BACKGROUND = (255, 255, 255)
TEXT_COLOR = (0, 0, 0)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size only
        return ImageFont.load_default()


def _text_width(draw: ImageDraw.ImageDraw, text: str, font) -> float:
    return draw.textlength(text, font=font)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font,
          width: int) -> Sequence[str]:
    """Greedy word wrap of ``text`` to ``width`` pixels."""
    lines = []
    for paragraph in text.splitlines() or ['']:
        line = ''
        for word in paragraph.split():
            candidate = f'{line} {word}'.strip()
            if line and _text_width(draw, candidate, font) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    # a single word longer than the width is cut by characters
    out = []
    for line in lines:
        if _text_width(draw, line, font) <= width:
            out.append(line)
            continue
        chars = max(1, int(len(line) * width / _text_width(draw, line, font)))
        out.extend(textwrap.wrap(line, chars) or [''])
    return out


def _fit(image: Image.Image, size: Tuple[int, int]) -> Image.Image:
    """Resize ``image`` to fit (width, height), keeping its aspect ratio,
    centred on a white cell."""
    width, height = size
    scale = min(width / image.width, height / image.height)
    resized = image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height *
                                                           scale))),
        Image.BILINEAR)
    cell = Image.new('RGB', size, BACKGROUND)
    cell.paste(resized, ((width - resized.width) // 2,
                         (height - resized.height) // 2))
    return cell


def draw_retrieval(query: str,
                   image_paths: Sequence[str],
                   scores: Sequence[float],
                   matches: Optional[Sequence[bool]] = None,
                   cell_size: Tuple[int, int] = (96, 288),
                   frame: int = 5,
                   margin: int = 10,
                   font_size: int = 14,
                   title: Optional[str] = None) -> Image.Image:
    """Draw a text query above its ranked gallery images.

    Each image is shown in rank order with its rank and score below it; when
    ``matches`` is given (the person ids are known), correct matches are
    framed green and wrong ones red, else every frame is grey.

    Args:
        query (str): the query text, word-wrapped to the picture's width.
        image_paths (Sequence[str]): the ranked images, best first.
        scores (Sequence[float]): their similarity scores.
        matches (Sequence[bool], optional): whether each image shows the
            query's person. Defaults to None (unknown).
        cell_size (tuple): (width, height) of an image cell in pixels.
            Defaults to (96, 288), the 1:3 aspect of pedestrian crops.
        frame (int): frame width in pixels. Defaults to 5.
        margin (int): outer margin and spacing in pixels. Defaults to 10.
        font_size (int): Defaults to 14.
        title (str, optional): a first line above the query (e.g. the query
            index and its person id). Defaults to None.

    Returns:
        PIL.Image.Image: the RGB picture.

    Raises:
        ValueError: if the lengths of the sequences differ, or no image is
            given.
    """
    num = _check_lengths(image_paths, scores, matches)
    font = _font(font_size)
    cell_w, cell_h = cell_size
    outer_w, outer_h = cell_w + 2 * frame, cell_h + 2 * frame
    width = margin + num * (outer_w + margin)
    line_h = font_size + 4
    lines = _text_lines(query, title, font, width - 2 * margin)
    text_h = len(lines) * line_h
    height = margin + text_h + margin + outer_h + 4 + 2 * line_h + margin

    canvas = Image.new('RGB', (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((margin, margin + i * line_h), line, fill=TEXT_COLOR,
                  font=font)
    top = margin + text_h + margin
    for rank, (path, score) in enumerate(zip(image_paths, scores)):
        color = UNKNOWN_COLOR if matches is None else (
            MATCH_COLOR if matches[rank] else MISMATCH_COLOR)
        _draw_cell(canvas, draw, (margin + rank * (outer_w + margin), top),
                   path, (f'#{rank + 1}', f'{float(score):.3f}'), color,
                   cell_size, frame, font, line_h)
    return canvas


def _check_lengths(image_paths, scores, matches) -> int:
    num = len(image_paths)
    if num == 0:
        raise ValueError('draw_retrieval needs at least one image')
    if len(scores) != num or (matches is not None and len(matches) != num):
        raise ValueError(
            f'image_paths, scores and matches must have the same length, got '
            f'{num}, {len(scores)} and '
            f'{None if matches is None else len(matches)}')
    return num


def _text_lines(query: str, title: Optional[str], font,
                width: int) -> List[str]:
    """The title (if any) and the query wrapped to ``width`` pixels."""
    scratch = ImageDraw.Draw(Image.new('RGB', (1, 1)))
    lines = list(_wrap(scratch, query, font, width))
    return [title] + lines if title else lines


def _draw_cell(canvas: Image.Image, draw: ImageDraw.ImageDraw,
               corner: Tuple[int, int], path: str, labels: Sequence[str],
               color: Tuple[int, int, int], cell_size: Tuple[int, int],
               frame: int, font, line_h: int) -> None:
    """One ranked image: its frame, the image fitted in it, the labels
    centred below."""
    (left, top), (cell_w, cell_h) = corner, cell_size
    outer_w, outer_h = cell_w + 2 * frame, cell_h + 2 * frame
    draw.rectangle([left, top, left + outer_w - 1, top + outer_h - 1],
                   fill=color)
    image = Image.fromarray(read_image(path, backend='pillow',
                                       channel_order='rgb'))
    canvas.paste(_fit(image.convert('RGB'), cell_size),
                 (left + frame, top + frame))
    for j, label in enumerate(labels):
        text_w = _text_width(draw, label, font)
        draw.text((left + (outer_w - text_w) / 2,
                   top + outer_h + 4 + j * line_h), label, fill=TEXT_COLOR,
                  font=font)


def save_picture(image: Image.Image, path: str) -> str:
    """Save ``image`` as PNG at ``path`` atomically (parent folders
    created, never through a link); returns the path."""
    buffer = io.BytesIO()
    image.save(buffer, format='PNG')
    atomic_write_bytes(buffer.getbuffer(), path)
    return path


def spaced_queries(num_queries: int, num: int) -> List[int]:
    """``num`` query indices evenly spaced over ``num_queries`` (the first
    and the last included)."""
    num = max(0, min(int(num), num_queries))
    if num == 0:
        return []
    return sorted({round(i * (num_queries - 1) / max(num - 1, 1))
                   for i in range(num)})
