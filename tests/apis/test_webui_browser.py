"""The search page in a real browser.

tools/webui.py serves a tiny trained model over a generated gallery (16
persons, person ids known) on a free local port; headless Chromium (Debian's
chromium and chromium-driver, through Selenium) types a query, waits for the
grid, and the test compares the ranking shown with TPRInferencer.search,
checks the identity frames in a screenshot, and that an empty query shows
the message. Skips, saying why, without a browser, Selenium or Gradio
(.ci/run installs them).

The README's screenshot comes from the same run:
``MMTPR_WEBUI_SCREENSHOT=docs/webui.png python -m pytest
tests/apis/test_webui_browser.py``.
"""
import os
import os.path as osp
import re
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from urllib.parse import quote

import numpy as np
import pytest
import torch
from conftest import build_runner, load_tool, tiny_cfg
from mmengine.dataset import pseudo_collate
from PIL import Image

from mmtpr.apis import TPRInferencer
from mmtpr.apis import search_app as sa

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CHROMIUM = os.environ.get('MMTPR_CHROMIUM') or shutil.which('chromium')
CHROMEDRIVER = os.environ.get('MMTPR_CHROMEDRIVER') or shutil.which(
    'chromedriver')
CHROMIUM_FLAGS = ('--headless', '--no-sandbox', '--disable-gpu',
                  '--disable-quic', '--no-first-run',
                  '--disable-background-networking',
                  '--disable-component-update', '--disable-sync',
                  '--disable-dev-shm-usage', '--window-size=1280,1200')
TOPK = 6


def skip_reason():
    """Why the browser test cannot run here, or None."""
    for module, extra in (('gradio', '".[webui]"'),
                          ('selenium', '-r requirements/webui.txt')):
        try:
            __import__(module)
        except ImportError:
            return f'{module} is not installed (pip install -e {extra})'
    for what, path in (('chromium', CHROMIUM),
                       ('chromedriver', CHROMEDRIVER)):
        if not path or not os.access(path, os.X_OK):
            return (f'no browser: {what} not found ({path or "not on PATH"}'
                    '); apt-get install chromium chromium-driver (or set '
                    'MMTPR_CHROMIUM and MMTPR_CHROMEDRIVER)')
    return None


def check_browser():
    """Skip (or, with MMTPR_REQUIRE_BROWSER=1 as in CI, fail) when the
    browser test cannot run."""
    reason = skip_reason()
    if reason and os.environ.get('MMTPR_REQUIRE_BROWSER') == '1':
        pytest.fail(f'MMTPR_REQUIRE_BROWSER=1 but {reason}')
    if reason:
        pytest.skip(reason)


def train_tiny(root):
    """A tiny CLIP trained in seconds on 16 generated persons (one image
    and two captions each); returns config, checkpoint and samples."""
    cfg = tiny_cfg(root / 'work', str(root / 'synth'), max_epochs=1)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.update(num_ids=[16, 4, 4],
                                                  images_per_id=1)
    cfg.train_dataloader.dataset.pipeline = \
        cfg.test_dataloader.dataset.pipeline
    cfg.model.data_preprocessor.pop('random_erasing', None)
    torch.manual_seed(0)
    runner = build_runner(cfg)
    model, dataset = runner.model, runner.train_dataloader.dataset
    # the 49408-token embedding stays as built: its dense gradient and
    # Adam update would be most of the time
    model.backbone.clip.token_embedding.requires_grad_(False)
    batch = model.data_preprocessor(
        pseudo_collate([dataset[i] for i in range(len(dataset))]), True)
    optimizer = torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    for _ in range(30):
        losses = model(**batch, mode='loss')
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    checkpoint, config = str(root / 'trained.pth'), str(root / 'config.py')
    torch.save({'state_dict': model.eval().state_dict(), 'meta': {}},
               checkpoint)
    cfg.dump(config)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    return config, checkpoint, infos


def free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


@pytest.fixture(scope='module')
def served(tmp_path_factory):
    """tools/webui.py serving the tiny model over the generated train
    split, on a free local port."""
    check_browser()
    root = tmp_path_factory.mktemp('webui')
    config, checkpoint, infos = train_tiny(root)
    port = free_port()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv('GRADIO_TEMP_DIR', str(root / 'gradio'))
        app = load_tool('webui').main([
            config, checkpoint, '--gallery-split', 'train', '--port',
            str(port), '--cache-dir', str(root / 'cache'), '--topk', '10',
            '--example', infos[3]['caption']], block=False)
        yield dict(url=f'http://127.0.0.1:{port}/', app=app, root=root,
                   config=config, checkpoint=checkpoint, infos=infos)
        app.close()


@pytest.fixture(scope='module')
def browser(served):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(dir=served['root'], prefix='chromium-')
    for flag in CHROMIUM_FLAGS + (f'--user-data-dir={profile}',):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER),
                              options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def wait_for(driver, condition, what, timeout=60):
    from selenium.webdriver.support.ui import WebDriverWait
    try:
        return WebDriverWait(driver, timeout, 0.2).until(
            lambda d: condition(d) or None)
    except Exception as err:
        status = driver.find_element('id', 'mmtpr-status').text
        raise AssertionError(f'waiting for {what}: {err!r}; status: '
                             f'{status!r}') from None


def grid(driver):
    """(alt text, src) of the result images shown, in order."""
    return [(img.get_attribute('alt'), img.get_attribute('src')) for img in
            driver.find_elements('css selector', '#mmtpr-results img')]


def search(driver, count, before=(), enter=False):
    """Click Search (or press Enter in the query); wait for ``count``
    results other than ``before``."""
    if enter:
        from selenium.webdriver.common.keys import Keys
        driver.find_element('css selector', '#mmtpr-query textarea'
                            ).send_keys(Keys.ENTER)
    else:
        driver.find_element('id', 'mmtpr-search').click()
    return wait_for(driver, lambda d: (
        len(grid(d)) == count and grid(d) != list(before)
        and ' ms' in d.find_element('id', 'mmtpr-status').text
        and grid(d)), f'{count} results')


def type_into(driver, selector, text):
    from selenium.webdriver.common.keys import Keys
    field = driver.find_element('css selector', selector)
    field.send_keys(Keys.CONTROL, 'a')
    field.send_keys(Keys.DELETE)
    if text:
        field.send_keys(text)
    field.send_keys(Keys.TAB)


def frame_pixels(shot, color):
    return int(np.all(np.asarray(shot)[..., :3] == color, axis=-1).sum())


def test_search_page_in_chromium(served, browser, tmp_path):
    start = time.perf_counter()
    info = served['infos'][0]
    query, pid = info['caption'], int(info['pid'])
    browser.get(served['url'])
    wait_for(browser, lambda d: d.find_elements(
        'css selector', '#mmtpr-query textarea'), 'the page')
    type_into(browser, '#mmtpr-topk input[type=number]', str(TOPK))
    type_into(browser, '#mmtpr-query textarea', query)
    shown = search(browser, TOPK, enter=True)

    inferencer = TPRInferencer(served['config'], served['checkpoint'],
                               device='cpu', show_progress=False,
                               cache_dir=str(served['root'] / 'cache'))
    gallery = inferencer.dataset_gallery('train')
    expected = inferencer.search(query, gallery, topk=TOPK)[0]
    captions = [sa.result_caption(rank + 1, score, gallery.relpaths[row],
                                  p) for rank, (row, score, p) in
                enumerate(zip(expected['indices'], expected['scores'],
                              expected['pids']))]
    assert [alt for alt, _ in shown] == captions
    status = browser.find_element('id', 'mmtpr-status').text
    assert re.match(rf'{TOPK} of 16 images in \d+\.\d ms', status), status

    type_into(browser, '#mmtpr-query-pid textarea, #mmtpr-query-pid input',
              str(pid))
    framed = search(browser, TOPK, before=shown)
    assert [alt for alt, _ in framed] == captions
    shot_path = str(tmp_path / 'webui.png')
    browser.save_screenshot(shot_path)
    shot = Image.open(shot_path).convert('RGB')
    pixels = np.asarray(shot).reshape(-1, 3)
    assert shot.size[0] >= 1000 and pixels.std(axis=0).max() > 20
    assert len(np.unique(pixels, axis=0)) > 100, 'a blank screenshot'
    matches = expected['pids'].count(pid)
    assert (frame_pixels(shot, sa.MATCH_COLOR) > 0) == (matches > 0)
    assert frame_pixels(shot, sa.MISMATCH_COLOR) > 0
    save_readme_screenshot(shot)

    type_into(browser, '#mmtpr-query textarea', '')
    browser.find_element('id', 'mmtpr-search').click()
    wait_for(browser, lambda d: 'the query is empty' in d.find_element(
        'id', 'mmtpr-status').text and not grid(d), 'the empty-query message')
    print(f'\nchecked in Chromium ({served["url"]}): Enter -> top-{TOPK} '
          'grid '
          f'{[c.rsplit(" · ", 1)[1] for c in captions]} equals '
          f'TPRInferencer.search in order, ranks and scores; status '
          f'{status!r}; with person {pid} ({matches} of the {TOPK} are '
          f'theirs) green/red frames in the screenshot {shot.size} '
          f'({shot_path}); empty query -> message, no grid; '
          f'{time.perf_counter() - start:.1f} s in the browser')


def test_server_serves_only_its_own_copies(served):
    """Gradio's file route refuses the gallery's own files and any other
    path: the page shows copies the server wrote itself."""
    gallery = served['app'].mmtpr_page.gallery
    for path in (gallery.paths[0], served['checkpoint'], '/etc/passwd'):
        url = f'{served["url"]}gradio_api/file={quote(path)}'
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=30)
        assert refused.value.code in (403, 404), (path, refused.value.code)
    print(f'\nchecked: {served["url"]} refuses gallery files, the '
          'checkpoint and /etc/passwd')


def save_readme_screenshot(shot):
    """The README's picture, when MMTPR_WEBUI_SCREENSHOT names a PNG."""
    out = os.environ.get('MMTPR_WEBUI_SCREENSHOT')
    if not out:
        return
    width = 1000
    small = shot.resize((width, round(shot.height * width / shot.width)),
                        Image.LANCZOS)
    small.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
        out, optimize=True)
    print(f'\nREADME screenshot written to {out} '
          f'({osp.getsize(out) // 1024} KB)')
