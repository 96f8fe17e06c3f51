"""The search page's logic without a browser: input checks, formatting,
SearchPage against TPRInferencer.search, the Gradio page's components and
tools/webui.py (launch replaced)."""
import os
import os.path as osp
import socket
import sys

import pytest
import torch
from conftest import load_tool, tiny_cfg
from PIL import Image

from mmtpr.apis import TPRInferencer
from mmtpr.apis import search_app as sa
from mmtpr.utils.errors import ConfigError, DataError

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """An untrained tiny CLIP (its ranking is deterministic all the same)
    and the generated train split (12 persons, 2 images each) as the
    gallery."""
    root = tmp_path_factory.mktemp('search_app')
    cfg = tiny_cfg(root / 'work', str(root / 'synth'))
    config = str(root / 'config.py')
    cfg.dump(config)
    inferencer = TPRInferencer(config, None, device='cpu',
                               cache_dir=str(root / 'cache'),
                               show_progress=False)
    gallery = inferencer.dataset_gallery('train')
    return dict(root=root, cfg=cfg, config=config, inferencer=inferencer,
                gallery=gallery)


# -- pure helpers
def test_check_query():
    assert sa.check_query('  a man in blue \n') == 'a man in blue'
    for bad in ('', '   \n ', None, 3):
        with pytest.raises(DataError, match='the query is empty'):
            sa.check_query(bad)
    with pytest.raises(DataError, match='1001 characters; at most 1000'):
        sa.check_query('x' * 1001)


def test_check_topk_domain_and_query_pid():
    assert sa.check_topk(3, 10) == 3 and sa.check_topk('4', 10) == 4
    assert sa.check_topk(5.0, 5) == 5
    for bad in (0, 11, 2.5, 'abc', None, float('nan'), float('inf')):
        with pytest.raises(DataError, match='from 1 to 10'):
            sa.check_topk(bad, 10)
    assert sa.check_domain(None, 1) is None and sa.check_domain(' ', 2) is None
    assert sa.check_domain(1, 2) == 1
    for bad in (2, -1, 0.5, 'x'):
        with pytest.raises(DataError, match=r'0\.\.1 \(the model has 2'):
            sa.check_domain(bad, 2)
    assert sa.check_query_pid('', [1, 2]) is None
    assert sa.check_query_pid(' 2 ', [1, 2]) == 2
    with pytest.raises(DataError, match="Person '7' is not in the gallery"):
        sa.check_query_pid('7', [1, 2])
    with pytest.raises(DataError, match='has no person ids'):
        sa.check_query_pid(1, None)


def test_frame_colors():
    assert sa.frame_colors(None, 3) == [sa.UNKNOWN_COLOR] * 3
    assert sa.frame_colors([4, 1, 4], 3, query_pid=4) == [
        sa.MATCH_COLOR, sa.MISMATCH_COLOR, sa.MATCH_COLOR]
    colors = sa.frame_colors([7, 3, 7, 9, 3], 5)
    assert colors[0] == colors[2] and colors[1] == colors[4]
    assert len({colors[0], colors[1], colors[3]}) == 3
    assert colors[0] == sa.identity_color(0)  # by order of appearance
    assert len({sa.identity_color(i) for i in range(12)}) == 12


def test_result_caption_cell_and_status():
    assert sa.result_caption(1, 0.87654, 'a/b.jpg') == '#1 · 0.877 · a/b.jpg'
    assert sa.result_caption(3, -0.1, 'x.png', 12) == \
        '#3 · -0.100 · person 12 · x.png'
    image = Image.new('RGB', (32, 64), (10, 20, 30))
    cell = sa.result_cell(image, (1, 2, 250), ['#1  0.5', 'person 3'])
    frame_w, frame_h = (sa.CELL_SIZE[0] + 2 * sa.FRAME,
                        sa.CELL_SIZE[1] + 2 * sa.FRAME)
    assert cell.width == frame_w and cell.height > frame_h + 30
    assert cell.getpixel((1, 1)) == (1, 2, 250)  # the frame
    assert cell.getpixel((frame_w // 2, frame_h // 2)) == (10, 20, 30)
    placeholder = sa.result_cell(None, sa.UNKNOWN_COLOR, ['#2  0.1'])
    assert placeholder.getpixel((frame_w // 2, frame_h // 2)) == \
        (235, 235, 235)
    status = sa.format_status(5, 0.0123, 40)
    assert status.startswith('**5** of 40 images in **12.3 ms**')
    status = sa.format_status(5, 0.0123, 40, domain=1, problems=['gone'])
    assert '(domain 1)' in status and '1 of them could not be shown' in \
        status and status.endswith('gone')


# -- SearchPage
def test_search_page_answers_as_the_inferencer(setup):
    inferencer, gallery = setup['inferencer'], setup['gallery']
    page = sa.SearchPage(inferencer, gallery)
    assert page.num_domains == 1 and page.max_topk == len(gallery) == 24
    query = 'a woman in a red coat with a black backpack'
    cells, status = page.answer(f'  {query} ', 5)
    expected = inferencer.search(query, gallery, topk=5)[0]
    assert len(cells) == 5
    names = [caption.rsplit(' · ', 1)[1] for _, caption in cells]
    assert names == [gallery.relpaths[i] for i in expected['indices']]
    for rank, (image, caption) in enumerate(cells):
        assert caption.startswith(f'#{rank + 1} · '
                                  f'{expected["scores"][rank]:.3f} · '
                                  f'person {expected["pids"][rank]} · ')
        assert isinstance(image, Image.Image)
    assert status.startswith('**5** of 24 images in **')
    # with the query's person: green for its images, red for the others
    pid = expected['pids'][1]
    cells, _ = page.answer(query, 5, query_pid=str(pid))
    frames = [image.getpixel((1, 1)) for image, _ in cells]
    assert frames == [sa.MATCH_COLOR if p == pid else sa.MISMATCH_COLOR
                      for p in expected['pids']]


@pytest.mark.parametrize('query,topk,pid,message', [
    ('', 5, None, 'the query is empty'),
    ('   ', 5, None, 'the query is empty'),
    ('a man', 0, None, 'top-k must be a whole number from 1 to 24'),
    ('a man', 25, None, 'top-k must be a whole number from 1 to 24'),
    ('a man', 5, '999', "Person '999' is not in the gallery"),
])
def test_search_page_bad_input_is_a_message(setup, query, topk, pid,
                                            message):
    page = sa.SearchPage(setup['inferencer'], setup['gallery'])
    cells, status = page.answer(query, topk, query_pid=pid)
    assert cells == [] and status.startswith('**Error:**')
    assert message in status and 'Traceback' not in status


def test_search_page_max_topk_and_bugs(setup, monkeypatch):
    page = sa.SearchPage(setup['inferencer'], setup['gallery'], max_topk=7)
    assert page.max_topk == 7
    assert 'from 1 to 7' in page.answer('a man', 8)[1]

    def broken(*args, **kwargs):
        raise RuntimeError('secret internals')

    monkeypatch.setattr(page.inferencer, 'search', broken)
    cells, status = page.answer('a man', 3)
    assert cells == [] and status == ('**Error:** unexpected RuntimeError; '
                                      'see the server log.')


def test_search_page_gallery_changed_after_start(setup, tmp_path):
    """An image removed after the gallery was encoded: a grey placeholder
    and a message, the other results still shown."""
    inferencer = setup['inferencer']
    folder = tmp_path / 'gallery'
    folder.mkdir()
    for i, path in enumerate(setup['gallery'].paths[:6]):
        Image.open(path).save(folder / f'{i}.png')
    gallery = inferencer.load_gallery(str(folder))
    page = sa.SearchPage(inferencer, gallery)
    first = inferencer.search('a man', gallery, topk=6)[0]['paths'][0]
    os.remove(first)
    cells, status = page.answer('a man', 6)
    assert len(cells) == 6 and '1 of them could not be shown' in status
    assert osp.basename(first) in status
    assert cells[0][0].getpixel((1, 1)) == sa.UNKNOWN_COLOR
    assert cells[0][1].endswith(f'· {osp.basename(first)}')  # no person id
    with pytest.raises(TypeError, match='a loaded Gallery'):
        sa.SearchPage(inferencer, str(folder))


# -- the Gradio page
def components(app):
    return {block.elem_id: block for block in app.blocks.values()
            if getattr(block, 'elem_id', None)}


def test_page_components(setup):
    pytest.importorskip('gradio')
    app = sa.build_search_app(setup['inferencer'], setup['gallery'],
                              topk=30, examples=['a man in red'])
    found = components(app)
    assert {'mmtpr-query', 'mmtpr-topk', 'mmtpr-search', 'mmtpr-status',
            'mmtpr-results', 'mmtpr-query-pid'} <= set(found)
    assert 'mmtpr-domain' not in found  # one domain prompt only
    slider = found['mmtpr-topk']
    assert (slider.minimum, slider.maximum, slider.value) == (1, 24, 24)
    assert found['mmtpr-results'].interactive is False
    assert app.mmtpr_page.gallery is setup['gallery']
    with pytest.raises(ConfigError, match='topk must be >= 1'):
        sa.build_search_app(setup['inferencer'], setup['gallery'], topk=0)


def test_page_domain_selector_for_dm_adapter(setup, tmp_path):
    pytest.importorskip('gradio')
    cfg = setup['cfg'].copy()
    cfg.model.backbone.petl = [dict(type='MixtureOfAdapters', num_experts=2,
                                    top_k=1, reduction=4, num_domains=3)]
    inferencer = TPRInferencer(cfg, None, device='cpu', cache_dir='',
                               domain=1, show_progress=False)
    gallery = inferencer.load_gallery(setup['gallery'].paths[0].rsplit(
        os.sep, 1)[0])
    app = sa.build_search_app(inferencer, gallery)
    found = components(app)
    assert 'mmtpr-query-pid' not in found  # a folder: no person ids
    dropdown = found['mmtpr-domain']
    assert dropdown.value == 1
    assert [value for _, value in dropdown.choices] == [0, 1, 2]
    page = app.mmtpr_page
    cells, status = page.answer('a man', 3, domain=2)
    expected = inferencer.search('a man', gallery, topk=3, domain=2)[0]
    assert [c.rsplit(' · ', 1)[1] for _, c in cells] == [
        gallery.relpaths[i] for i in expected['indices']]
    assert '(domain 2)' in status
    assert 'one of 0..2' in page.answer('a man', 3, domain=3)[1]


def test_missing_gradio_is_a_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, 'gradio', None)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[webui\]"'):
        sa.import_gradio()


def test_busy_port_is_a_config_error(setup):
    pytest.importorskip('gradio')
    app = sa.build_search_app(setup['inferencer'], setup['gallery'])
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f'127.0.0.1:{port}'):
            sa.launch_search_app(app, port=port, block=False)


# -- tools/webui.py
def test_tool_defaults_to_a_local_address(setup, tmp_path, monkeypatch,
                                          capsys):
    pytest.importorskip('gradio')
    tool = load_tool('webui')
    args = tool.parse_args(['c.py', 'k.pth', '--gallery', 'g'])
    assert (args.host, args.port, args.share, args.topk) == (
        '127.0.0.1', 7860, False, 10)
    checkpoint = str(tmp_path / 'model.pth')
    torch.save({'state_dict': setup['inferencer'].model.state_dict()},
               checkpoint)
    calls = []
    monkeypatch.setattr(tool, 'launch_search_app',
                        lambda *args, **kwargs: calls.append(args))
    app = tool.main([setup['config'], checkpoint, '--gallery-split',
                     'train', '--cache-dir', str(setup['root'] / 'cache'),
                     '--topk', '3', '--example', 'a man in red'])
    assert calls == [(app, '127.0.0.1', 7860, False)]
    assert len(app.mmtpr_page.gallery) == 24
    assert capsys.readouterr().out == ''  # no note for a local address
    # public binding only when asked, and said
    app = tool.main([setup['config'], checkpoint, '--gallery-split',
                     'train', '--cache-dir', str(setup['root'] / 'cache'),
                     '--host', '0.0.0.0', '--port', '8000', '--share'])
    assert calls[1] == (app, '0.0.0.0', 8000, True)
    out = capsys.readouterr().out
    assert 'serving on 0.0.0.0: anyone who can reach this machine' in out
    assert '--share opens a public link' in out


def test_tool_bad_gallery_is_one_error_block(setup, tmp_path, capsys):
    pytest.importorskip('gradio')
    from mmtpr.utils.cli import EXIT_USER_ERROR, run_tool
    tool = load_tool('webui')
    checkpoint = str(tmp_path / 'model.pth')
    torch.save({'state_dict': setup['inferencer'].model.state_dict()},
               checkpoint)
    with pytest.raises(SystemExit) as exit_info:
        run_tool(tool.main, [setup['config'], checkpoint, '--gallery',
                             str(tmp_path / 'nowhere')])
    assert exit_info.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith('error: gallery ') and 'does not exist' in err
    assert 'Traceback' not in err
