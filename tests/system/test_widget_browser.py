"""Real-browser tests of the chat widget (qa/widget/) against a live server.

One module-scoped fixture copies the real corpus plus an `xss_test` document
(literal `<img>` / `<script>` markup in its text, `<b>` in its title) into a temp
dir, builds the index once and serves `create_app(settings, service)` with uvicorn
in a background thread. Every test drives Debian's Chromium through
pytest-playwright's `page` / `browser` fixtures.

Run: `pytest tests/system/test_widget_browser.py` (about 1.5 minutes: most of it is the index build).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from conftest import CORPUS, ROOT, model_cache
from conftest import live_server as serve_in_thread
from qa.embedding import Embedder
from qa.tokens import Tokenizer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("QA_CHROMIUM", "/usr/bin/chromium")
CHROME_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):  # CI installs it: a missing browser must fail there
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set QA_CHROMIUM)", allow_module_level=True)

IN_DOMAIN_QUESTION = "日本运输机械行业海外生产比率是多少？"
OUT_OF_DOMAIN_QUESTIONS = [
    "明天上海的天气怎么样？会下雨吗？",
    "How do I bake sourdough bread at home?",
    "推荐几部好看的科幻电影",
]
XSS_DOC_ID = "xss_test"
XSS_TITLE = "标记测试：<b>粗体</b>与产业空心化"
XSS_SOURCE = "测试来源 <i>斜体</i>"
XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_SCRIPT = "<script>alert(2)</script>"
# "鹦鹉螺" (nautilus) appears in no real document, so this question retrieves xss_test first.
XSS_QUESTION = "鹦鹉螺测试文档的结论是什么？"
XSS_TEXT = (
    "鹦鹉螺测试文档专门记录产业空心化的标记样本。产业空心化意味着制造业持续外迁，"
    f"本地就业岗位随之减少{XSS_IMG}。\n"
    f"在鹦鹉螺测试文档里，产业空心化的第二个例子是{XSS_SCRIPT}，它只是文字，不应被执行。\n"
    "鹦鹉螺测试文档的结论：产业空心化需要通过技术创新与产业升级来应对。\n"
)

UI_TIMEOUT_MS = 30_000  # above the widget's own 20 s request timeout, so a slow server shows as its error text
expect.set_options(timeout=UI_TIMEOUT_MS)

# Widgets live in the open shadow root of <qa-widget>; Playwright's CSS locators pierce it.
W = "qa-widget"

# JS run in the page: which element inside the widget's shadow root has focus (its class name), else null.
FOCUSED_IN_WIDGET = """() => {
  const w = document.querySelector('qa-widget');
  if (!w || document.activeElement !== w) return null;
  const a = w.shadowRoot.activeElement;
  return a ? a.className : null;
}"""


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's browser fixtures, pointed at Debian's Chromium (never `playwright install`)."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROME_ARGS}


@dataclass(frozen=True)
class LiveServer:
    base: str
    port: int
    metadata: dict[str, dict[str, str]]

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def _make_corpus(dest: Path) -> dict[str, dict[str, str]]:
    dest.mkdir(parents=True)
    for path in sorted(CORPUS.glob("*.txt")):
        shutil.copy(path, dest / path.name)
    metadata = json.loads((CORPUS / "metadata.json").read_text(encoding="utf-8"))
    metadata[XSS_DOC_ID] = {"title": XSS_TITLE, "source": XSS_SOURCE}
    (dest / "metadata.json").write_text(json.dumps(metadata, ensure_ascii=False, indent=2), encoding="utf-8")
    (dest / f"{XSS_DOC_ID}.txt").write_text(XSS_TEXT, encoding="utf-8")
    return metadata


@pytest.fixture(scope="module")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, tokenizer: Tokenizer
) -> Iterator[LiveServer]:
    from qa.config import Settings
    from qa.service import Service

    tmp = tmp_path_factory.mktemp("widget-browser")
    metadata = _make_corpus(tmp / "corpus")
    settings = Settings(corpus_dir=tmp / "corpus", index_dir=tmp / "index", model_cache=model_cache())
    service = Service(settings, embedder, tokenizer)
    service.build(progress=False)
    with serve_in_thread(settings, service) as base:
        yield LiveServer(base=base, port=int(base.rsplit(":", 1)[1]), metadata=metadata)


# --------------------------------------------------------------------------- helpers


def open_demo(page: Page, base: str, path: str = "/") -> None:
    """Load a page embedding the widget and wait until it is styled (it stays hidden until widget.css applies)."""
    page.goto(base + path)
    expect(page.locator(f"{W} .qa-launcher")).to_be_visible()


def open_widget(page: Page) -> None:
    page.locator(f"{W} .qa-launcher").click()
    expect(page.locator(f"{W} .qa-panel")).to_be_visible()
    expect(page.locator(f"{W} .qa-launcher")).to_have_attribute("aria-expanded", "true")


def ask(page: Page, question: str) -> Locator:
    """Type a question, press Enter, wait until its answer stops loading; returns that .qa-answer."""
    answers = page.locator(f"{W} .qa-answer")
    before = answers.count()
    box = page.locator(f"{W} textarea.qa-input")
    box.fill(question)
    box.press("Enter")
    return wait_answer(page, before)


def wait_answer(page: Page, index: int) -> Locator:
    answer = page.locator(f"{W} .qa-answer").nth(index)
    expect(answer).to_have_attribute("aria-busy", "false")
    return answer


def styles_of(page: Page) -> dict[str, dict[str, Any]]:
    """Computed styles and boxes of the open widget's parts, after the panel's opening animation."""
    return page.evaluate(
        """async () => {
  const root = document.querySelector('qa-widget').shadowRoot;
  const panel = root.querySelector('.qa-panel');
  await Promise.all(panel.getAnimations().map((a) => a.finished));
  const props = ['font-size', 'color', 'font-family', 'font-weight', 'line-height', 'display', 'padding',
                 'margin', 'background-color', 'border-radius', 'visibility', 'position', 'width', 'height'];
  const out = {};
  const parts = ['.qa-launcher', '.qa-launcher svg', '.qa-panel', '.qa-header', '.qa-title', '.qa-subtitle',
                 '.qa-close', '.qa-body', '.qa-intro-text', '.qa-input', '.qa-send', '.qa-form',
                 '.qa-message', '.qa-summary', '.passage-title', '.passage-text', '.passage-text mark.hl',
                 '.show-context', '.copy-citation'];
  for (const sel of parts) {
    const node = root.querySelector(sel);
    if (!node) { out[sel] = null; continue; }
    const cs = getComputedStyle(node);
    const entry = {};
    for (const p of props) entry[p] = cs.getPropertyValue(p);
    if (['.qa-launcher', '.qa-panel', '.qa-header', '.qa-title', '.qa-input', '.qa-send'].includes(sel)) {
      const r = node.getBoundingClientRect();
      entry.box = [r.x, r.y, r.width, r.height].map((v) => Math.round(v));
    }
    out[sel] = entry;
  }
  const host = getComputedStyle(document.querySelector('qa-widget'));
  out[':host'] = {display: host.display, position: host.position, visibility: host.visibility,
                  opacity: host.opacity, 'z-index': host.zIndex};
  return out;
}"""
    )


# --------------------------------------------------------------------------- tests


def test_demo_page_answers_in_domain_question_with_highlighted_passage(page: Page, live_server: LiveServer) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_demo(page, live_server.base)
    open_widget(page)
    ask(page, IN_DOMAIN_QUESTION)

    first = page.locator(f"{W} li.passage").first
    expect(first).to_be_visible()
    title_000 = live_server.metadata["000_b2b502afe09dfef5"]["title"]
    assert "产业空心化" in title_000
    expect(first.locator(".passage-title")).to_have_text(title_000)
    expect(first.locator(".passage-text")).to_contain_text("44.4%")
    expect(first.locator("mark.hl").first).to_be_visible()
    expect(page.locator(f"{W} .qa-message.qa-question")).to_have_text(IN_DOMAIN_QUESTION)
    expect(page.locator(f"{W} .not-answerable")).to_have_count(0)
    assert errors == []  # no uncaught script errors under the demo page's CSP


def test_out_of_domain_question_shows_not_answerable(page: Page, live_server: LiveServer) -> None:
    # Pick the first question the API itself calls unanswerable, so this tests the widget, not the threshold.
    verdicts: dict[str, bool] = {}
    for candidate in OUT_OF_DOMAIN_QUESTIONS:
        verdicts[candidate] = live_server.api("POST", "/v1/ask", {"question": candidate})["answerable"]
        if verdicts[candidate] is False:
            question = candidate
            break
    else:
        pytest.fail(f"the API calls every out-of-domain question answerable: {verdicts}")

    open_demo(page, live_server.base)
    open_widget(page)
    answer = ask(page, question)

    expect(answer.locator(".not-answerable")).to_be_visible()
    expect(answer.locator(".not-answerable")).to_contain_text("没有找到足够相关的内容")
    expect(answer).to_have_class("qa-answer is-not-answerable")
    # The closest passages are still shown, under a heading that says they may be unrelated.
    expect(answer.locator(".qa-closest-heading")).to_be_visible()
    expect(answer.locator("li.passage.passage-muted").first).to_be_visible()
    expect(answer.locator(".qa-summary")).to_have_count(0)


def test_markup_in_passages_and_titles_renders_as_literal_text(page: Page, live_server: LiveServer) -> None:
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    open_demo(page, live_server.base)
    open_widget(page)
    answer = ask(page, XSS_QUESTION)

    first = answer.locator("li.passage").first
    expect(first.locator(".passage-meta")).to_contain_text(XSS_DOC_ID)
    expect(first.locator(".passage-title")).to_have_text(XSS_TITLE)  # literal "<b>", not bold
    texts = answer.locator(".passage-text").evaluate_all("nodes => nodes.map(n => n.textContent)")
    assert any(XSS_IMG in t for t in texts), texts
    assert any(XSS_SCRIPT in t for t in texts), texts

    # The raw source, shown by "show context", goes through the same text-only path.
    first.locator("button.show-context").click()
    expect(first.locator("div.context mark")).to_be_visible()
    expect(first.locator("div.context")).to_contain_text(XSS_IMG)
    expect(first.locator("div.context")).to_contain_text(XSS_SOURCE)

    injected = page.evaluate(
        """() => {
  const root = document.querySelector('qa-widget').shadowRoot;
  const q = (sel) => root.querySelectorAll(sel).length;
  return {
    img: q('.qa-log img'), script: q('.qa-log script'), b: q('.qa-log b'), i: q('.qa-log i'),
    onerror: q('.qa-log [onerror]'),
    pageImg: document.querySelectorAll('img').length, pageScript: document.querySelectorAll('script').length,
  };
}"""
    )
    # The demo page itself has no <img> and one <script> (the widget's own tag).
    assert injected == {"img": 0, "script": 0, "b": 0, "i": 0, "onerror": 0, "pageImg": 0, "pageScript": 1}
    page.wait_for_timeout(300)  # an <img onerror> would have fired by now
    assert dialogs == []


def test_keyboard_only_open_ask_and_escape(page: Page, live_server: LiveServer) -> None:
    open_demo(page, live_server.base)
    launcher = page.locator(f"{W} .qa-launcher")

    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate(FOCUSED_IN_WIDGET) == "qa-launcher":
            break
    else:
        pytest.fail("Tab never reached the widget's launcher")
    expect(launcher).to_be_focused()

    page.keyboard.press("Enter")
    expect(page.locator(f"{W} .qa-panel")).to_be_visible()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    expect(page.locator(f"{W} textarea.qa-input")).to_be_focused()

    page.keyboard.type(IN_DOMAIN_QUESTION)
    page.keyboard.press("Enter")
    answer = wait_answer(page, 0)
    expect(answer.locator("li.passage").first).to_be_visible()
    expect(page.locator(f"{W} textarea.qa-input")).to_have_value("")

    page.keyboard.press("Escape")
    expect(page.locator(f"{W} .qa-panel")).to_be_hidden()
    expect(page.locator(f"{W} .qa-panel")).to_have_attribute("hidden", "")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    expect(launcher).to_be_focused()
    assert page.evaluate(FOCUSED_IN_WIDGET) == "qa-launcher"


HOSTILE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hostile host</title>
<style>
  * { font-size: 40px !important; color: red !important; font-family: serif !important; line-height: 3 !important; }
  button { display: none !important; }
  div { padding: 50px !important; }
  html { font-size: 30px !important; }
  svg, textarea, h2, p, mark, ol, li { display: none !important; visibility: hidden !important; }
  qa-widget { display: none !important; opacity: 0 !important; }
</style></head>
<body><div><p>A host page with aggressive global CSS.</p><button>host button</button></div>
<script src="/widget.js" data-endpoint="" data-title="产业空心化问答" data-lang="zh" defer></script>
</body></html>"""


def test_hostile_host_css_does_not_change_widget_styles(page: Page, live_server: LiveServer) -> None:
    def styled(path: str) -> dict[str, dict[str, Any]]:
        open_demo(page, live_server.base, path)
        # Open with the keyboard so no hover state differs between the two pages.
        page.locator(f"{W} .qa-launcher").focus()
        page.keyboard.press("Enter")
        expect(page.locator(f"{W} .qa-panel")).to_be_visible()
        answer = ask(page, IN_DOMAIN_QUESTION)
        expect(answer.locator("li.passage").first).to_be_visible()
        return styles_of(page)

    demo = styled("/")

    page.route(
        f"{live_server.base}/hostile.html",
        lambda route: route.fulfill(status=200, content_type="text/html; charset=utf-8", body=HOSTILE_HTML),
    )
    hostile = styled("/hostile.html")
    # The host page really is hostile: its own button is styled away, its text is 40px red serif.
    assert page.locator("body > div > button").is_hidden()
    assert page.evaluate("getComputedStyle(document.querySelector('body > div > p')).color") == "rgb(255, 0, 0)"

    assert hostile == demo
    assert demo[".qa-launcher"]["display"] == "flex"
    assert demo[".qa-title"]["font-size"] == "15px"
    assert demo[".qa-title"]["color"] != "rgb(255, 0, 0)"
    assert "serif" not in demo[".qa-title"]["font-family"].replace("sans-serif", "")


def test_show_context_and_copy_citation(context: BrowserContext, page: Page, live_server: LiveServer) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.base)
    open_demo(page, live_server.base)
    open_widget(page)
    answer = ask(page, IN_DOMAIN_QUESTION)
    first = answer.locator("li.passage").first

    expected = live_server.api("POST", "/v1/ask", {"question": IN_DOMAIN_QUESTION, "top_k": 5})["passages"][0]
    doc = live_server.api("GET", f"/v1/documents/{expected['doc_id']}")
    raw_passage = doc["text"][expected["start"] : expected["end"]]

    show = first.locator("button.show-context")
    expect(show).to_have_attribute("aria-expanded", "false")
    show.click()
    context_box = first.locator("div.context")
    expect(context_box).to_be_visible()
    hit = context_box.locator("mark")
    expect(hit).to_be_visible()
    expect(hit).to_have_text(raw_passage, use_inner_text=False)
    # The mark starts where the passage starts (cleaned text drops spaces and line breaks of the raw file).
    squeeze = "".join(expected["text"].split())
    assert "".join((hit.text_content() or "").split()).startswith(squeeze[:20])
    expect(show).to_have_attribute("aria-expanded", "true")
    expect(show).to_have_text("隐藏上下文")

    show.click()
    expect(context_box).to_be_hidden()
    expect(show).to_have_text("显示上下文")

    copy = first.locator("button.copy-citation")
    copy.click()
    expect(copy).to_have_text("已复制")
    clipboard = page.evaluate("navigator.clipboard.readText()")
    assert clipboard.startswith(f"{expected['title']} [{expected['doc_id']}:{expected['start']}-{expected['end']}]\n")
    assert "44.4%" in clipboard
    expect(copy).to_have_text("复制引用", timeout=5_000)  # the label resets after 2 s


def test_server_error_shows_retry_that_recovers(page: Page, live_server: LiveServer) -> None:
    body = '{"error":{"code":"internal_error","message":"x","details":null}}'

    def fail(route: Any) -> None:
        route.fulfill(status=500, body=body, content_type="application/json")

    page.route("**/v1/ask", fail)
    open_demo(page, live_server.base)
    open_widget(page)
    answer = ask(page, IN_DOMAIN_QUESTION)

    expect(answer.locator(".qa-error")).to_be_visible()
    expect(answer.locator(".qa-error")).to_contain_text("问答服务暂时出现问题")
    retry = answer.locator(".qa-retry")
    expect(retry).to_be_visible()
    expect(answer.locator("li.passage")).to_have_count(0)

    page.unroute("**/v1/ask", fail)
    retry.click()
    expect(answer.locator("li.passage").first).to_be_visible()
    expect(answer.locator(".qa-error")).to_have_count(0)
    expect(page.locator(f"{W} .qa-answer")).to_have_count(1)  # the retry reuses the failed answer's slot


@pytest.mark.parametrize(
    ("name", "width", "height"),
    [("widget-desktop.png", 1280, 800), ("widget-360.png", 360, 740)],
    ids=["desktop-1280x800", "mobile-360x740"],
)
def test_screenshots_of_open_widget_fit_the_viewport(
    browser: Browser, live_server: LiveServer, name: str, width: int, height: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN")
    try:
        page = context.new_page()
        open_demo(page, live_server.base)
        open_widget(page)
        answer = ask(page, IN_DOMAIN_QUESTION)
        expect(answer.locator("li.passage").first).to_be_visible()
        page.mouse.move(0, 0)
        page.evaluate(
            "() => Promise.all(document.querySelector('qa-widget').shadowRoot.querySelector('.qa-panel')"
            ".getAnimations().map((a) => a.finished))"
        )
        page.wait_for_timeout(250)  # hover/focus transitions

        for part in (".qa-panel", ".qa-launcher"):
            box = page.locator(f"{W} {part}").bounding_box()
            assert box is not None
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (part, box)
            assert box["y"] >= 0 and box["y"] + box["height"] <= height, (part, box)
        # Nothing inside the panel scrolls sideways.
        overflow = page.evaluate(
            "() => { const b = document.querySelector('qa-widget').shadowRoot.querySelector('.qa-body');"
            " return b.scrollWidth - b.clientWidth; }"
        )
        assert overflow <= 0

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name))
        assert (SCREENSHOTS / name).stat().st_size > 10_000
    finally:
        context.close()


# --------------------------------------------------------------------------- API docs offline (review #17, finding 9)


def block_off_server_requests(page: Page, base: str) -> list[str]:
    """Every request the page tries to send anywhere but this server is recorded and aborted, as on an
    offline network; returns that (live) list."""
    attempted: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(base + "/"):
            r.continue_()
        else:
            attempted.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return attempted


def test_swagger_ui_renders_offline_with_no_external_request(page: Page, live_server: LiveServer) -> None:
    attempted = block_off_server_requests(page, live_server.base)
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(live_server.base + "/docs")
    ask_operation = page.locator('.opblock-post .opblock-summary-path[data-path="/v1/ask"]')
    expect(ask_operation).to_be_visible()
    expect(page.locator(".opblock-get .opblock-summary-path[data-path='/v1/documents']")).to_be_visible()
    ask_operation.click()  # expanding an operation renders its schema: still nothing from outside
    expect(page.locator(".opblock-post.is-open")).to_be_visible()
    page.wait_for_load_state("networkidle")

    assert attempted == []
    assert all(url.startswith((live_server.base + "/", "data:", "blob:")) for url in seen), seen
    assert any("/openapi.json" in url for url in seen) and any("swagger-ui-bundle.js" in url for url in seen)
    assert errors == []
