"""A search page for text-based person retrieval, built with Gradio.

:func:`build_search_app` turns a :class:`TPRInferencer` and a gallery it
loaded once into a ``gr.Blocks`` page: a description box with examples, a
top-k slider, a domain selector for models with several domain prompts
(DM-Adapter), the ranked images as a grid with rank and score under each,
and the time the query took. :class:`SearchPage` answers the queries without
Gradio: bad input and unreadable images become a message, never an
exception. The grid shows only gallery images: each result is read from the
gallery's own path (bounded reads) and handed to Gradio as pixels, so no
file path ever comes from the browser. Gradio is an optional extra
(``pip install -e ".[webui]"``), imported only to build or launch a page.
"""
import colorsys
import time
import traceback
from typing import Any, Dict, List, Optional, Sequence, Tuple

from mmengine.logging import print_log
from PIL import Image, ImageDraw, ImageFont, ImageOps

from mmtpr.utils.errors import ConfigError, DataError, MMTPRError
from mmtpr.utils.image_io import read_image

from .gallery import Gallery

EXAMPLE_QUERIES = (
    'A woman in a red coat with a black backpack and white sneakers.',
    'A man wearing a blue shirt, black trousers and glasses, carrying a '
    'brown bag.',
    'A young person in a yellow T-shirt and grey shorts riding a bicycle.',
)
MAX_QUERY_CHARS = 1000
CELL_SIZE = (96, 288)  # (width, height): the 1:3 aspect of pedestrian crops
FRAME = 6
FONT_SIZE = 15
MATCH_COLOR = (0, 170, 0)
MISMATCH_COLOR = (220, 30, 30)
UNKNOWN_COLOR = (200, 200, 200)
FRAMES_NOTE = (
    'Frames: with person ids known, the same colour means the same person '
    'id; enter the person id of the query to frame its images green and '
    'the others red. Grey: the gallery has no person ids.')
# the grid's cells are tall like the pictures, whose labels replace
# Gradio's caption overlay (the caption stays as the image's alt text)
CSS = ('#mmtpr-results .thumbnail-item {aspect-ratio: 1 / 3; height: auto}'
       ' #mmtpr-results .caption-label {display: none}')


def import_gradio():
    """The ``gradio`` module, or a :class:`ConfigError` that says how to
    install it."""
    try:
        import gradio
    except ImportError as err:
        raise ConfigError(
            f'the search page needs Gradio ({err}): pip install -e '
            '".[webui]" (or pip install -r requirements/webui.txt)'
        ) from None
    return gradio


# -- input checks (pure)
def check_query(query: Any, max_chars: int = MAX_QUERY_CHARS) -> str:
    """The query stripped of surrounding blanks.

    Raises:
        DataError: not a string, empty, or longer than ``max_chars``.
    """
    if not isinstance(query, str) or not query.strip():
        raise DataError('Type a description of the person to search for: '
                        'the query is empty.')
    query = query.strip()
    if len(query) > max_chars:
        raise DataError(f'The query has {len(query)} characters; at most '
                        f'{max_chars} are accepted.')
    return query


def _whole(value: Any, accept, message: str) -> int:
    """``value`` as an int if it is a whole number that ``accept``s, else
    a :class:`DataError` with ``message``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float('nan')
    if not number.is_integer() or not accept(int(number)):
        raise DataError(message)
    return int(number)


def check_topk(topk: Any, max_topk: int) -> int:
    """``topk`` as an int in [1, max_topk], else a :class:`DataError`."""
    return _whole(topk, lambda k: 1 <= k <= max_topk,
                  f'top-k must be a whole number from 1 to {max_topk}, got '
                  f'{topk!r}.')


def check_domain(domain: Any, num_domains: int) -> Optional[int]:
    """The query's domain in [0, num_domains), None (the inferencer's
    default) when not given, else a :class:`DataError`."""
    if domain is None or str(domain).strip() == '':
        return None
    return _whole(domain, lambda d: 0 <= d < num_domains,
                  f'The domain must be one of 0..{num_domains - 1} (the '
                  f'model has {num_domains} domain prompts), got '
                  f'{domain!r}.')


def check_query_pid(pid: Any,
                    gallery_pids: Optional[Sequence[int]]) -> Optional[int]:
    """The person id of the query, None when not given, else a
    :class:`DataError` (the gallery has no ids, or not this one)."""
    if pid is None or str(pid).strip() == '':
        return None
    if gallery_pids is None:
        raise DataError('The gallery has no person ids: leave the person id '
                        'of the query empty.')
    return _whole(pid, set(gallery_pids).__contains__,
                  f'Person {str(pid).strip()!r} is not in the gallery.')


# -- formatting (pure)
def identity_color(slot: int) -> Tuple[int, int, int]:
    """A distinct colour for the ``slot``-th identity (golden-angle hues)."""
    hue = (0.58 + 0.618034 * slot) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.75, 0.9)
    return round(red * 255), round(green * 255), round(blue * 255)


def frame_colors(pids: Optional[Sequence[int]], count: int,
                 query_pid: Optional[int] = None
                 ) -> List[Tuple[int, int, int]]:
    """The frame colour of each of ``count`` ranked images.

    Grey when the person ids are unknown; green (the query's person) or red
    when ``query_pid`` is given; else one colour per person id, in order of
    first appearance in the ranking (distinct among the shown images).
    """
    if pids is None:
        return [UNKNOWN_COLOR] * count
    if query_pid is not None:
        return [MATCH_COLOR if pid == query_pid else MISMATCH_COLOR
                for pid in pids]
    slots: Dict[int, int] = {}
    return [identity_color(slots.setdefault(pid, len(slots)))
            for pid in pids]


def result_caption(rank: int, score: float, name: str,
                   pid: Optional[int] = None) -> str:
    """The line under a result: rank (from 1), score, person id, file."""
    person = '' if pid is None else f' · person {pid}'
    return f'#{rank} · {score:.3f}{person} · {name}'


def result_cell(image: Optional[Image.Image], color: Tuple[int, int, int],
                labels: Sequence[str],
                cell_size: Tuple[int, int] = CELL_SIZE) -> Image.Image:
    """A result as one picture: ``image`` fitted (aspect kept) on a white
    ``cell_size`` cell in a frame of ``color``, with ``labels`` below (a
    grey placeholder when ``image`` is None: it could not be read)."""
    if image is None:
        cell = Image.new('RGB', cell_size, (235, 235, 235))
    else:
        cell = ImageOps.pad(image.convert('RGB'), cell_size,
                            color=(255, 255, 255))
    framed = ImageOps.expand(cell, border=FRAME, fill=color)
    line = FONT_SIZE + 4
    out = Image.new('RGB', (framed.width, framed.height + 4 + line *
                            len(labels)), (255, 255, 255))
    out.paste(framed, (0, 0))
    draw, font = ImageDraw.Draw(out), _font()
    for i, label in enumerate(labels):
        width = draw.textlength(label, font=font)
        draw.text(((out.width - width) / 2, framed.height + 4 + i * line),
                  label, fill=(0, 0, 0), font=font)
    return out


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except TypeError:  # Pillow < 10.1 has one bitmap size only
        return ImageFont.load_default()


def format_status(count: int, seconds: float, gallery_size: int,
                  domain: Optional[int] = None,
                  problems: Sequence[str] = ()) -> str:
    """The line above the grid: how many results, from how many images,
    in how long; then the images that could not be shown."""
    where = '' if domain is None else f' (domain {domain})'
    text = (f'**{count}** of {gallery_size} images in '
            f'**{seconds * 1000:.1f} ms**{where} (encoding the query and '
            'ranking the gallery).')
    if problems:
        text += (f'\n\n{len(problems)} of them could not be shown (the '
                 'gallery changed since it was encoded; restart the page '
                 f'to encode it again): {problems[0]}')
    return text


# -- the page's logic, without Gradio
class SearchPage:
    """Answers the queries of the search page from the gallery's features.

    Args:
        inferencer (TPRInferencer): the model.
        gallery (Gallery): the gallery, loaded (encoded) once by
            ``inferencer.load_gallery`` or ``inferencer.dataset_gallery``.
        index (str): the search index kind. Defaults to 'exact'.
        max_topk (int): the largest top-k offered (at most the gallery
            size). Defaults to 100.
    """

    def __init__(self, inferencer, gallery: Gallery, index: str = 'exact',
                 max_topk: int = 100) -> None:
        if not isinstance(gallery, Gallery):
            raise TypeError('gallery must be a loaded Gallery, got '
                            f'{type(gallery).__name__}')
        self.inferencer, self.gallery = inferencer, gallery
        self.index = index
        self.num_domains = int(inferencer.model.backbone.num_domains)
        self.max_topk = max(1, min(int(max_topk), len(gallery)))

    def search(self, query: Any, topk: Any, domain: Any = None) -> dict:
        """The checked query's ranking (``TPRInferencer.search``) with
        the ``seconds`` it took; a :class:`MMTPRError` for bad input."""
        text = check_query(query)
        k = check_topk(topk, self.max_topk)
        dom = check_domain(domain, self.num_domains) \
            if self.num_domains > 1 else None
        start = time.perf_counter()
        result = self.inferencer.search(text, self.gallery, topk=k,
                                        index=self.index, domain=dom)[0]
        return dict(result, seconds=time.perf_counter() - start,
                    domain=dom)

    def cells(self, result: dict, query_pid: Optional[int] = None
              ) -> Tuple[List[Tuple[Image.Image, str]], List[str]]:
        """The result pictures (:func:`result_cell`) with their captions,
        and the problems met reading the gallery's images."""
        pids = result.get('pids')
        colors = frame_colors(pids, len(result['indices']), query_pid)
        cells, problems = [], []
        for rank, (row, score) in enumerate(
                zip(result['indices'], result['scores'])):
            pid = None if pids is None else pids[rank]
            try:  # the gallery's own file, never a path from the page
                image = Image.fromarray(read_image(
                    self.gallery.paths[row], backend='pillow',
                    channel_order='rgb'))
            except (MMTPRError, OSError) as err:
                problems.append(str(err))
                image, colors[rank] = None, UNKNOWN_COLOR
            labels = [f'#{rank + 1}  {score:.3f}'] + (
                [] if pid is None else [f'person {pid}'])
            cells.append((result_cell(image, colors[rank], labels),
                          result_caption(rank + 1, score,
                                         self.gallery.relpaths[row], pid)))
        return cells, problems

    def answer(self, query: Any, topk: Any, domain: Any = None,
               query_pid: Any = None) -> Tuple[list, str]:
        """The grid's cells and the status message for a query; bad input
        gives no cells and the message."""
        try:
            pid = check_query_pid(query_pid, self.gallery.pids)
            result = self.search(query, topk, domain)
            cells, problems = self.cells(result, pid)
        except MMTPRError as err:
            return [], f'**Error:** {str(err).strip()}'
        except Exception as err:  # a bug: logged, the page stays up
            print_log(f'search page: {traceback.format_exc()}',
                      logger='current', level=40)
            return [], (f'**Error:** unexpected {type(err).__name__}; see '
                        'the server log.')
        return cells, format_status(len(cells), result['seconds'],
                                    len(self.gallery), result['domain'],
                                    problems)



# -- the Gradio page
def _controls(gr, page: SearchPage, topk: int) -> Dict[str, Any]:
    """The input components; the domain selector and the query's person
    id only when they apply."""
    controls = dict(query=gr.Textbox(
        label='Description of the person (Enter searches)', lines=1,
        max_lines=6,
        placeholder='e.g. ' + EXAMPLE_QUERIES[0], elem_id='mmtpr-query'))
    with gr.Row():
        controls['topk'] = gr.Slider(
            1, page.max_topk, value=min(topk, page.max_topk), step=1,
            label='top-k', elem_id='mmtpr-topk')
        if page.num_domains > 1:
            controls['domain'] = gr.Dropdown(
                [(f'domain {d}', d) for d in range(page.num_domains)],
                value=page.inferencer.domain, label='domain prompt',
                info='DM-Adapter: the domain of the query',
                elem_id='mmtpr-domain')
        if page.gallery.pids is not None:
            controls['query_pid'] = gr.Textbox(
                label='person id of the query (optional)',
                placeholder='e.g. 4', elem_id='mmtpr-query-pid')
    return controls


def build_search_app(inferencer, gallery: Gallery, topk: int = 10,
                     max_topk: int = 100,
                     examples: Optional[Sequence[str]] = None,
                     title: str = 'mmtpr person search',
                     index: str = 'exact'):
    """The search page (a ``gr.Blocks``) over a loaded gallery.

    Args:
        inferencer (TPRInferencer): the model.
        gallery (Gallery): the gallery, already loaded (encoded once).
        topk (int): the slider's initial value. Defaults to 10.
        max_topk (int): the slider's maximum (at most the gallery size).
            Defaults to 100.
        examples (Sequence[str], optional): example descriptions. Defaults
            to :data:`EXAMPLE_QUERIES`.
        title (str): the page's title.
        index (str): the search index kind. Defaults to 'exact'.

    Returns:
        gradio.Blocks: launch it with :func:`launch_search_app`.

    Raises:
        ConfigError: Gradio is not installed, or ``topk`` < 1.
    """
    gr = import_gradio()
    if int(topk) < 1:
        raise ConfigError(f'topk must be >= 1, got {topk}')
    page = SearchPage(inferencer, gallery, index, max(topk, max_topk))
    ids = '' if gallery.pids is None else \
        f', {len(set(gallery.pids))} person ids'
    with gr.Blocks(title=title, analytics_enabled=False,
                   delete_cache=(3600, 3600)) as app:
        gr.Markdown(f'# {title}\nGallery: {len(gallery)} images{ids}, '
                    'encoded once at start.')
        controls = _controls(gr, page, int(topk))
        button = gr.Button('Search', variant='primary',
                           elem_id='mmtpr-search')
        gr.Examples(list(examples or EXAMPLE_QUERIES),
                    inputs=[controls['query']], label='Examples')
        status = gr.Markdown(elem_id='mmtpr-status')
        grid = gr.Gallery(
            label='ranked gallery images', show_label=False, columns=10,
            height='auto', object_fit='contain', format='png',
            interactive=False, fit_columns=False, elem_id='mmtpr-results')
        gr.Markdown(FRAMES_NOTE, elem_id='mmtpr-frames-note')
        names = [n for n in ('query', 'topk', 'domain', 'query_pid')
                 if n in controls]

        def answer(*values):
            kwargs = dict(zip(names, values))
            return page.answer(kwargs['query'], kwargs['topk'],
                               kwargs.get('domain'), kwargs.get('query_pid'))

        for event in (button.click, controls['query'].submit):
            event(answer, [controls[n] for n in names], [grid, status],
                  api_name='search' if event == button.click else False)
    app.mmtpr_page = page
    return app


def launch_search_app(app, host: str = '127.0.0.1', port: int = 7860,
                      share: bool = False, block: bool = True) -> str:
    """Serve the page; returns its local address.

    Args:
        app (gradio.Blocks): from :func:`build_search_app`.
        host (str): the address to bind. Defaults to '127.0.0.1' (this
            machine only); '0.0.0.0' serves every interface.
        port (int): Defaults to 7860.
        share (bool): also open a public link through Gradio's share
            servers. Defaults to False.
        block (bool): serve until interrupted; False returns at once
            (``app.close()`` stops the server). Defaults to True.

    Raises:
        ConfigError: the port cannot be bound.
    """
    gr = import_gradio()
    try:
        _, url, _ = app.launch(
            server_name=host, server_port=int(port), share=bool(share),
            prevent_thread_lock=not block, inbrowser=False, quiet=not block,
            show_error=False, ssr_mode=False, theme=gr.themes.Default(),
            css=CSS, footer_links=[])
    except OSError as err:
        raise ConfigError(f'cannot serve the page on {host}:{port} ({err});'
                          ' pick another --port') from None
    return url
