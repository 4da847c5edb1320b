/*
 * 产业空心化问答 — embeddable retrieval Q&A chat widget.
 *
 * Vanilla JS, no dependencies, no build step. Embed with:
 *
 *   <script src="https://qa.example/widget.js" data-endpoint="https://qa.example"
 *           data-title="产业空心化问答" data-lang="zh" defer></script>
 *
 * data-endpoint  base URL of the QA service; an empty value means the page's
 *                own origin; when the attribute is absent, the origin the
 *                script was loaded from is used.
 * data-title     panel title.
 * data-lang      "zh" (default) or "en".
 *
 * Everything lives in the open shadow root of a <qa-widget> element appended
 * to document.body. Server data is only ever put into the page through
 * textContent / text nodes — never parsed as markup.
 */
(function () {
  'use strict';

  if (typeof window === 'undefined' || typeof document === 'undefined') return;
  if (!window.customElements || !window.HTMLElement || !Element.prototype.attachShadow) return;

  var TAG = 'qa-widget';
  var ASK_TIMEOUT_MS = 20000;
  var DOCUMENT_TIMEOUT_MS = 20000;
  var CSS_TIMEOUT_MS = 8000;
  var TOP_K = 5;
  var CONTEXT_CHARS = 300;
  var MAX_SERVER_MESSAGE = 400;
  var SVG_NS = 'http://www.w3.org/2000/svg';

  var STRINGS = {
    zh: {
      htmlLang: 'zh-CN',
      defaultTitle: '资料库问答',
      subtitle: '检索资料库中的相关段落',
      open: '打开问答',
      close: '关闭问答',
      inputLabel: '输入问题',
      placeholder: '输入问题…',
      keysHint: 'Enter 发送，Shift+Enter 换行。',
      send: '发送',
      intro: '请输入问题，我会在资料库中检索最相关的段落。',
      legendHl: '匹配词',
      legendEvidence: '最相关的句子',
      searching: '正在检索…',
      found: function (n) { return '找到 ' + n + ' 个相关段落'; },
      took: function (ms) { return '用时 ' + ms + ' 毫秒'; },
      noPassages: '没有返回任何段落。',
      notAnswerable: '资料库中没有找到足够相关的内容。',
      closest: '最接近的段落（可能不相关）',
      rankLabel: function (n) { return '第 ' + n + ' 名'; },
      score: '相关度',
      position: function (s, e) { return '位置 ' + s + '–' + e; },
      untitled: '（无标题）',
      showContext: '显示上下文',
      hideContext: '隐藏上下文',
      loadingContext: '正在加载上下文…',
      contextError: '无法加载上下文，请稍后再试。',
      contextUnavailable: '无法在原文中定位这个段落。',
      contextSource: '来源',
      copy: '复制引用',
      copied: '已复制',
      copyFailed: '复制失败',
      retry: '重试',
      errTimeout: '请求超时，服务暂时没有响应。请稍后重试。',
      errNetwork: '无法连接到问答服务，请检查网络后重试。',
      errServer: '问答服务暂时出现问题，请稍后重试。',
      errClient: '请求未被接受，请修改问题后重试。',
      errBadResponse: '问答服务返回了无法识别的结果，请稍后重试。'
    },
    en: {
      htmlLang: 'en',
      defaultTitle: 'Document Q&A',
      subtitle: 'Searches the document collection',
      open: 'Open Q&A',
      close: 'Close Q&A',
      inputLabel: 'Your question',
      placeholder: 'Ask a question…',
      keysHint: 'Enter sends, Shift+Enter adds a new line.',
      send: 'Send',
      intro: 'Ask a question and I will look up the most relevant passages in the documents.',
      legendHl: 'matched terms',
      legendEvidence: 'best sentence',
      searching: 'Searching…',
      found: function (n) { return n === 1 ? 'Found 1 relevant passage' : 'Found ' + n + ' relevant passages'; },
      took: function (ms) { return ms + ' ms'; },
      noPassages: 'No passages were returned.',
      notAnswerable: 'No sufficiently relevant passage was found in the documents.',
      closest: 'Closest passages (may be unrelated)',
      rankLabel: function (n) { return 'Rank ' + n; },
      score: 'Score',
      position: function (s, e) { return 'chars ' + s + '–' + e; },
      untitled: '(untitled)',
      showContext: 'Show context',
      hideContext: 'Hide context',
      loadingContext: 'Loading context…',
      contextError: 'Could not load the context. Please try again later.',
      contextUnavailable: 'This passage could not be located in the source text.',
      contextSource: 'Source',
      copy: 'Copy citation',
      copied: 'Copied',
      copyFailed: 'Copy failed',
      retry: 'Retry',
      errTimeout: 'The request timed out. Please try again in a moment.',
      errNetwork: 'Could not reach the Q&A service. Please check your connection and try again.',
      errServer: 'The Q&A service ran into a problem. Please try again later.',
      errClient: 'The request was not accepted. Please rephrase your question and try again.',
      errBadResponse: 'The Q&A service returned an unexpected response. Please try again later.'
    }
  };

  /* ------------------------------------------------------------------ */
  /* Configuration from the embedding <script> tag                       */
  /* ------------------------------------------------------------------ */

  function findOwnScript() {
    var s = document.currentScript;
    if (s && s.tagName === 'SCRIPT') return s;
    return document.querySelector('script[src*="widget.js"]');
  }

  function readConfig(script) {
    var endpoint = null;
    var attr = script ? script.getAttribute('data-endpoint') : null;
    if (attr !== null) {
      endpoint = attr.trim();
    } else if (script && script.src) {
      try { endpoint = new URL(script.src, document.baseURI).origin; } catch (e) { endpoint = ''; }
    } else {
      endpoint = '';
    }
    if (endpoint === 'null') endpoint = ''; // opaque origins (file:, data:)
    endpoint = endpoint.replace(/\/+$/, '');

    var langAttr = ((script && script.getAttribute('data-lang')) || 'zh').trim().toLowerCase();
    var lang = langAttr.indexOf('en') === 0 ? 'en' : 'zh';
    var titleAttr = script ? script.getAttribute('data-title') : null;
    var title = titleAttr && titleAttr.trim() ? titleAttr.trim() : STRINGS[lang].defaultTitle;
    return { endpoint: endpoint, lang: lang, title: title };
  }

  var CONFIG = readConfig(findOwnScript());

  /* ------------------------------------------------------------------ */
  /* Small DOM helpers (text only — no markup parsing anywhere)          */
  /* ------------------------------------------------------------------ */

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function button(className, label, ariaLabel) {
    var b = el('button', className, label);
    b.type = 'button';
    if (ariaLabel) b.setAttribute('aria-label', ariaLabel);
    return b;
  }

  var ICONS = {
    chat: ['M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.9A8 8 0 1 1 21 12z', 'M9.6 9.6a2.5 2.5 0 1 1 3.4 2.3c-.6.3-1 .8-1 1.5v.3', 'M12 16.6v.1'],
    close: ['M18 6 6 18', 'M6 6l12 12'],
    send: ['M5 12h13', 'M12 5l7 7-7 7']
  };

  function icon(name, className) {
    var svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    svg.setAttribute('class', 'qa-icon' + (className ? ' ' + className : ''));
    ICONS[name].forEach(function (d) {
      var path = document.createElementNS(SVG_NS, 'path');
      path.setAttribute('d', d);
      svg.appendChild(path);
    });
    return svg;
  }

  var idCounter = 0;
  function uid(prefix) {
    idCounter += 1;
    return prefix + '-' + idCounter;
  }

  /* ------------------------------------------------------------------ */
  /* Offsets: the backend is Python, whose string offsets count code     */
  /* points. For text made only of BMP characters those equal JS         */
  /* (UTF-16 code unit) offsets; when the text contains astral           */
  /* characters we translate code-point offsets to code-unit offsets so  */
  /* spans never split a surrogate pair or drift.                        */
  /* ------------------------------------------------------------------ */

  function makeIndexer(str) {
    if (!/[\uD800-\uDFFF]/.test(str)) {
      return { length: str.length, unit: function (i) { return i; } };
    }
    var offsets = [];
    var i = 0;
    while (i < str.length) {
      offsets.push(i);
      var c = str.charCodeAt(i);
      var pair = c >= 0xD800 && c <= 0xDBFF && i + 1 < str.length &&
        (str.charCodeAt(i + 1) & 0xFC00) === 0xDC00;
      i += pair ? 2 : 1;
    }
    offsets.push(str.length);
    return { length: offsets.length - 1, unit: function (k) { return offsets[k]; } };
  }

  /**
   * Display form of raw source text: PDF extractions put blank lines (and
   * stray spaces) after every printed line; show each line break once.
   */
  function tidyBreaks(str) {
    return str.replace(/[ \t\r\u00a0\u3000]*\n\s*/g, '\n');
  }

  function isNum(x) {
    return typeof x === 'number' && isFinite(x);
  }

  /** Validate a [start, end) span against a length; returns clamped ints or null. */
  function normSpan(span, length) {
    if (!Array.isArray(span) || span.length < 2 || !isNum(span[0]) || !isNum(span[1])) return null;
    var s = Math.max(0, Math.min(length, Math.floor(span[0])));
    var e = Math.max(0, Math.min(length, Math.floor(span[1])));
    return e > s ? [s, e] : null;
  }

  /**
   * Fill `container` with `text`, wrapping highlight spans in <mark class="hl">
   * and the evidence span in <span class="evidence">. Invalid spans are
   * dropped, spans are clamped to the text, and a highlight overlapping an
   * earlier one is ignored.
   */
  function renderMarkedText(container, text, highlights, evidence) {
    var ix = makeIndexer(text);
    var spans = [];
    if (Array.isArray(highlights)) {
      highlights.forEach(function (h) {
        var n = normSpan(h, ix.length);
        if (n) spans.push(n);
      });
    }
    spans.sort(function (a, b) { return a[0] - b[0] || b[1] - a[1]; });
    var hls = [];
    var lastEnd = 0;
    spans.forEach(function (s) {
      if (s[0] >= lastEnd) { hls.push(s); lastEnd = s[1]; }
    });
    var ev = normSpan(evidence, ix.length);

    // Convert to code-unit offsets.
    hls = hls.map(function (s) { return [ix.unit(s[0]), ix.unit(s[1])]; });
    if (ev) ev = [ix.unit(ev[0]), ix.unit(ev[1])];

    var cuts = [0, text.length];
    hls.forEach(function (s) { cuts.push(s[0], s[1]); });
    if (ev) cuts.push(ev[0], ev[1]);
    cuts.sort(function (a, b) { return a - b; });

    var evSpan = null;
    var hlIndex = 0;
    for (var k = 0; k < cuts.length - 1; k++) {
      var a = cuts[k];
      var b = cuts[k + 1];
      if (b <= a) continue;
      while (hlIndex < hls.length && hls[hlIndex][1] <= a) hlIndex++;
      var inHl = hlIndex < hls.length && hls[hlIndex][0] <= a;
      var inEv = !!ev && ev[0] <= a && b <= ev[1];

      var parent = container;
      if (inEv) {
        if (!evSpan) {
          evSpan = el('span', 'evidence');
          container.appendChild(evSpan);
        }
        parent = evSpan;
      } else {
        evSpan = null;
      }
      var piece = text.slice(a, b);
      if (inHl) {
        var last = parent.lastChild;
        if (last && last.nodeName === 'MARK' && last.getAttribute('data-hl') === String(hlIndex)) {
          last.appendChild(document.createTextNode(piece));
        } else {
          var mark = el('mark', 'hl', piece);
          mark.setAttribute('data-hl', String(hlIndex));
          parent.appendChild(mark);
        }
      } else {
        parent.appendChild(document.createTextNode(piece));
      }
    }
  }

  /* ------------------------------------------------------------------ */
  /* Networking                                                          */
  /* ------------------------------------------------------------------ */

  function RequestFailure(kind, status, data) {
    this.kind = kind; // 'timeout' | 'network'
    this.status = status || 0;
    this.data = data || null;
  }

  /** fetch JSON with a hard timeout; resolves {ok, status, data} or rejects RequestFailure. */
  function requestJSON(url, init, timeoutMs) {
    var controller = typeof AbortController === 'function' ? new AbortController() : null;
    var options = {
      method: init.method || 'GET',
      headers: init.headers || { accept: 'application/json' },
      credentials: 'omit',
      mode: 'cors',
      cache: 'no-store',
      referrerPolicy: 'strict-origin-when-cross-origin'
    };
    if (init.body !== undefined) options.body = init.body;
    if (controller) options.signal = controller.signal;

    return new Promise(function (resolve, reject) {
      var settled = false;
      var timer = setTimeout(function () {
        if (settled) return;
        settled = true;
        if (controller) controller.abort();
        reject(new RequestFailure('timeout'));
      }, timeoutMs);

      fetch(url, options)
        .then(function (res) {
          return res.text().then(function (body) {
            var data = null;
            if (body) {
              try { data = JSON.parse(body); } catch (e) { data = null; }
            }
            return { ok: res.ok, status: res.status, data: data };
          });
        })
        .then(function (result) {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(result);
        }, function () {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(new RequestFailure('network'));
        });
    });
  }

  function serverMessage(data) {
    if (data && typeof data === 'object' && data.error && typeof data.error === 'object' &&
        typeof data.error.message === 'string') {
      var m = data.error.message.trim();
      if (m) return m.length > MAX_SERVER_MESSAGE ? m.slice(0, MAX_SERVER_MESSAGE) + '…' : m;
    }
    return '';
  }

  /** Turn a failed request into a user-facing sentence. */
  function describeFailure(t, failure) {
    if (failure instanceof RequestFailure) {
      return failure.kind === 'timeout' ? t.errTimeout : t.errNetwork;
    }
    if (failure && failure.status >= 400 && failure.status < 500) {
      return serverMessage(failure.data) || t.errClient;
    }
    if (failure && failure.status >= 500) return t.errServer;
    return t.errBadResponse;
  }

  /* ------------------------------------------------------------------ */
  /* Clipboard                                                           */
  /* ------------------------------------------------------------------ */

  function copyWithTextarea(text, host) {
    var ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.setAttribute('aria-hidden', 'true');
    ta.tabIndex = -1;
    ta.className = 'qa-copy-buffer';
    var s = ta.style;
    s.position = 'fixed';
    s.top = '0';
    s.left = '0';
    s.width = '1px';
    s.height = '1px';
    s.opacity = '0';
    s.pointerEvents = 'none';
    host.appendChild(ta);
    var active = document.activeElement;
    var ok = false;
    try {
      ta.focus();
      ta.select();
      ta.setSelectionRange(0, text.length);
      ok = document.execCommand('copy');
    } catch (e) {
      ok = false;
    }
    host.removeChild(ta);
    return ok;
  }

  function copyText(text, host) {
    if (navigator.clipboard && typeof navigator.clipboard.writeText === 'function') {
      return navigator.clipboard.writeText(text).then(
        function () { return true; },
        function () { return copyWithTextarea(text, host); }
      );
    }
    return Promise.resolve(copyWithTextarea(text, host));
  }

  /* ------------------------------------------------------------------ */
  /* The custom element                                                  */
  /* ------------------------------------------------------------------ */

  class QaWidget extends HTMLElement {
    constructor() {
      super();
      this._built = false;
      this._docCache = new Map();
      this.attachShadow({ mode: 'open' });
    }
  }

  QaWidget.prototype.connectedCallback = function () {
    if (this._built) return;
    this._built = true;
    this._config = this._config || CONFIG;
    this._t = STRINGS[this._config.lang] || STRINGS.zh;
    this._build();
    this._loadStyles();
  };

  QaWidget.prototype._url = function (path) {
    return this._config.endpoint + path;
  };

  QaWidget.prototype._loadStyles = function () {
    var shadow = this.shadowRoot;
    var root = this._root;
    var url = this._url('/widget.css');
    var revealed = false;
    function reveal() {
      if (revealed) return;
      revealed = true;
      root.style.removeProperty('visibility');
    }
    function useLink() {
      var link = document.createElement('link');
      link.rel = 'stylesheet';
      link.href = url;
      link.addEventListener('load', reveal);
      link.addEventListener('error', reveal);
      shadow.insertBefore(link, root);
    }
    // Keep the widget invisible until its stylesheet is in place (no flash
    // of unstyled buttons), but never hide it forever.
    root.style.visibility = 'hidden';
    setTimeout(reveal, CSS_TIMEOUT_MS);

    requestJSONText(url).then(function (css) {
      var style = document.createElement('style');
      style.textContent = css;
      shadow.insertBefore(style, root);
      // A page CSP without 'unsafe-inline' blocks <style>; fall back to <link>.
      var applied = false;
      try { applied = !!(style.sheet && style.sheet.cssRules.length); } catch (e) { applied = false; }
      if (applied) {
        reveal();
      } else {
        shadow.removeChild(style);
        useLink();
      }
    }, useLink);
  };

  function requestJSONText(url) {
    var controller = typeof AbortController === 'function' ? new AbortController() : null;
    var timer = setTimeout(function () { if (controller) controller.abort(); }, CSS_TIMEOUT_MS);
    var opts = { credentials: 'omit', mode: 'cors' };
    if (controller) opts.signal = controller.signal;
    return fetch(url, opts).then(function (res) {
      if (!res.ok) throw new Error('HTTP ' + res.status);
      return res.text();
    }).then(function (text) {
      clearTimeout(timer);
      return text;
    }, function (err) {
      clearTimeout(timer);
      throw err;
    });
  }

  QaWidget.prototype._build = function () {
    var t = this._t;
    var self = this;
    var shadow = this.shadowRoot;

    var root = el('div', 'qa-root');
    root.setAttribute('lang', t.htmlLang);
    this._root = root;

    // Floating launcher.
    var panelId = uid('qa-panel');
    var titleId = uid('qa-title');
    var launcher = button('qa-launcher', null, t.open);
    launcher.setAttribute('aria-expanded', 'false');
    launcher.setAttribute('aria-controls', panelId);
    launcher.setAttribute('aria-haspopup', 'dialog');
    launcher.title = t.open;
    launcher.appendChild(icon('chat', 'qa-icon-open'));
    launcher.appendChild(icon('close', 'qa-icon-close'));
    this._launcher = launcher;

    // Panel.
    var panel = el('div', 'qa-panel');
    panel.id = panelId;
    panel.hidden = true;
    panel.setAttribute('role', 'dialog');
    panel.setAttribute('aria-modal', 'false');
    panel.setAttribute('aria-labelledby', titleId);
    this._panel = panel;

    var header = el('div', 'qa-header');
    var heading = el('div', 'qa-heading');
    var title = el('h2', 'qa-title', this._config.title);
    title.id = titleId;
    heading.appendChild(title);
    heading.appendChild(el('p', 'qa-subtitle', t.subtitle));
    var closeBtn = button('qa-close', null, t.close);
    closeBtn.title = t.close;
    closeBtn.appendChild(icon('close'));
    header.appendChild(heading);
    header.appendChild(closeBtn);

    var body = el('div', 'qa-body');
    this._body = body;
    var intro = el('div', 'qa-intro');
    intro.appendChild(el('p', 'qa-intro-text', t.intro));
    var keysHint = el('p', 'qa-keys-hint', t.keysHint);
    keysHint.id = uid('qa-keys');
    intro.appendChild(keysHint);
    var legend = el('p', 'qa-legend');
    legend.appendChild(el('mark', 'qa-legend-hl', t.legendHl));
    legend.appendChild(el('span', 'qa-legend-evidence', t.legendEvidence));
    intro.appendChild(legend);
    var log = el('div', 'qa-log');
    log.setAttribute('role', 'log');
    log.setAttribute('aria-live', 'polite');
    log.setAttribute('aria-relevant', 'additions text');
    log.setAttribute('aria-label', this._config.title);
    this._log = log;
    body.appendChild(intro);
    body.appendChild(log);

    var form = el('form', 'qa-form');
    form.setAttribute('novalidate', '');
    var input = el('textarea', 'qa-input');
    input.rows = 1;
    input.setAttribute('aria-label', t.inputLabel);
    input.setAttribute('aria-describedby', keysHint.id);
    input.placeholder = t.placeholder;
    input.setAttribute('enterkeyhint', 'send');
    input.setAttribute('autocomplete', 'off');
    this._input = input;
    var send = button('qa-send', null, t.send);
    send.type = 'submit';
    send.title = t.send;
    send.appendChild(icon('send'));
    form.appendChild(input);
    form.appendChild(send);

    panel.appendChild(header);
    panel.appendChild(body);
    panel.appendChild(form);

    root.appendChild(panel);
    root.appendChild(launcher);
    shadow.appendChild(root);

    // Behaviour.
    launcher.addEventListener('click', function () {
      if (self.isOpen()) self.close(true);
      else self.open();
    });
    closeBtn.addEventListener('click', function () { self.close(true); });
    root.addEventListener('keydown', function (e) {
      if ((e.key === 'Escape' || e.key === 'Esc') && !e.isComposing && self.isOpen()) {
        e.preventDefault();
        e.stopPropagation();
        self.close(true);
      }
    });
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      self._submit();
    });
    input.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && !e.shiftKey && !e.altKey && !e.ctrlKey && !e.metaKey &&
          !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        self._submit();
      }
    });
    input.addEventListener('input', function () { self._autosize(); });
  };

  QaWidget.prototype._autosize = function () {
    var input = this._input;
    input.style.height = 'auto';
    var h = Math.min(input.scrollHeight + 2, 132);
    input.style.height = h + 'px';
  };

  QaWidget.prototype.isOpen = function () {
    return !!this._panel && !this._panel.hidden;
  };

  QaWidget.prototype.open = function () {
    if (!this._panel) return;
    this._panel.hidden = false;
    this._launcher.setAttribute('aria-expanded', 'true');
    this._root.classList.add('is-open');
    this._input.focus();
  };

  QaWidget.prototype.close = function (returnFocus) {
    if (!this._panel) return;
    this._panel.hidden = true;
    this._launcher.setAttribute('aria-expanded', 'false');
    this._root.classList.remove('is-open');
    if (returnFocus !== false) this._launcher.focus();
  };

  QaWidget.prototype._submit = function () {
    var q = this._input.value.trim();
    if (!q) {
      this._input.focus();
      return;
    }
    this._input.value = '';
    this._autosize();
    this.ask(q);
  };

  /** Public: append a question to the conversation and ask the service. */
  QaWidget.prototype.ask = function (question) {
    var q = String(question || '').trim();
    if (!q) return Promise.resolve();
    var bubble = el('div', 'qa-message qa-question', q);
    var answer = el('div', 'qa-answer');
    this._log.appendChild(bubble);
    this._log.appendChild(answer);
    this._scrollTo(bubble);
    return this._ask(q, answer, bubble);
  };

  QaWidget.prototype._scrollTo = function (node) {
    var body = this._body;
    var top = node.offsetTop - 8;
    body.scrollTop = Math.max(0, top);
  };

  QaWidget.prototype._ask = function (question, answer, bubble) {
    var self = this;
    var t = this._t;
    clear(answer);
    answer.className = 'qa-answer is-loading';
    answer.setAttribute('aria-busy', 'true');
    var loading = el('div', 'qa-loading');
    loading.setAttribute('aria-busy', 'true');
    var dots = el('span', 'qa-spinner');
    dots.setAttribute('aria-hidden', 'true');
    loading.appendChild(dots);
    loading.appendChild(el('span', 'qa-loading-text', t.searching));
    answer.appendChild(loading);

    var req = requestJSON(this._url('/v1/ask'), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ question: question, top_k: TOP_K })
    }, ASK_TIMEOUT_MS);

    return req.then(function (res) {
      if (!res.ok) throw res;
      var data = res.data;
      if (!data || typeof data !== 'object' || Array.isArray(data)) throw { status: res.status, data: data };
      self._finish(answer);
      self._renderAnswer(answer, data);
    }).catch(function (failure) {
      self._finish(answer);
      self._renderError(answer, describeFailure(t, failure), question, bubble);
    }).then(function () {
      if (bubble && bubble.isConnected) self._scrollTo(bubble);
    });
  };

  QaWidget.prototype._finish = function (answer) {
    clear(answer);
    answer.className = 'qa-answer';
    answer.setAttribute('aria-busy', 'false');
  };

  QaWidget.prototype._renderError = function (answer, message, question, bubble) {
    var self = this;
    var t = this._t;
    answer.classList.add('has-error');
    var box = el('div', 'qa-error');
    box.appendChild(el('p', 'qa-error-text', message));
    var retry = button('qa-retry', t.retry);
    retry.addEventListener('click', function () {
      self._ask(question, answer, bubble);
    });
    box.appendChild(retry);
    answer.appendChild(box);
  };

  QaWidget.prototype._renderAnswer = function (answer, data) {
    var t = this._t;
    var passages = Array.isArray(data.passages)
      ? data.passages.filter(function (p) { return p && typeof p === 'object'; })
      : [];
    var answerable = data.answerable !== false;

    if (answerable) {
      var summary = el('div', 'qa-summary');
      summary.appendChild(el('span', 'qa-summary-text',
        passages.length ? t.found(passages.length) : t.noPassages));
      if (isNum(data.took_ms)) {
        summary.appendChild(el('span', 'qa-took', t.took(Math.round(data.took_ms))));
      }
      answer.appendChild(summary);
      if (passages.length) answer.appendChild(this._renderPassages(passages, false));
      return;
    }

    answer.classList.add('is-not-answerable');
    var box = el('div', 'not-answerable');
    box.appendChild(el('p', 'not-answerable-text', t.notAnswerable));
    if (passages.length) {
      var section = el('section', 'qa-closest');
      var hid = uid('qa-closest');
      var h = el('h3', 'qa-closest-heading', t.closest);
      h.id = hid;
      section.setAttribute('aria-labelledby', hid);
      section.appendChild(h);
      section.appendChild(this._renderPassages(passages, true));
      box.appendChild(section);
    }
    answer.appendChild(box);
  };

  QaWidget.prototype._renderPassages = function (passages, muted) {
    var self = this;
    var list = el('ol', 'passages' + (muted ? ' passages-muted' : ''));
    passages.forEach(function (p, i) {
      list.appendChild(self._renderPassage(p, i, muted));
    });
    return list;
  };

  QaWidget.prototype._renderPassage = function (p, index, muted) {
    var self = this;
    var t = this._t;
    var text = typeof p.text === 'string' ? p.text : '';
    var title = typeof p.title === 'string' && p.title.trim() ? p.title : '';
    var docId = typeof p.doc_id === 'string' || isNum(p.doc_id) ? String(p.doc_id) : '';
    var rank = isNum(p.rank) ? p.rank : index + 1;

    var item = el('li', 'passage' + (muted ? ' passage-muted' : ''));

    var head = el('div', 'passage-head');
    var rankEl = el('span', 'passage-rank', '#' + rank);
    rankEl.setAttribute('aria-label', t.rankLabel(rank));
    rankEl.title = t.rankLabel(rank);
    head.appendChild(rankEl);
    head.appendChild(el('h3', 'passage-title', title || docId || t.untitled));
    var score = el('span', 'passage-score');
    score.appendChild(el('span', 'passage-score-label', t.score + ' '));
    score.appendChild(el('span', 'passage-score-value', isNum(p.score) ? p.score.toFixed(2) : '–'));
    head.appendChild(score);
    item.appendChild(head);

    var metaParts = [];
    if (docId) metaParts.push(docId);
    if (isNum(p.start) && isNum(p.end)) metaParts.push(t.position(p.start, p.end));
    if (metaParts.length) item.appendChild(el('div', 'passage-meta', metaParts.join(' · ')));

    var body = el('div', 'passage-text');
    renderMarkedText(body, text, p.highlights, p.evidence);
    item.appendChild(body);

    var actions = el('div', 'passage-actions');
    var ctxBtn = button('show-context', t.showContext);
    var copyBtn = button('copy-citation', t.copy);
    actions.appendChild(ctxBtn);
    actions.appendChild(copyBtn);
    item.appendChild(actions);

    var context = el('div', 'context');
    context.id = uid('qa-context');
    context.hidden = true;
    ctxBtn.setAttribute('aria-expanded', 'false');
    ctxBtn.setAttribute('aria-controls', context.id);
    item.appendChild(context);

    if (!docId || !isNum(p.start) || !isNum(p.end)) {
      ctxBtn.disabled = true;
    }

    var loaded = false;
    var loading = false;
    ctxBtn.addEventListener('click', function () {
      var expanded = ctxBtn.getAttribute('aria-expanded') === 'true';
      if (expanded) {
        context.hidden = true;
        ctxBtn.setAttribute('aria-expanded', 'false');
        ctxBtn.textContent = t.showContext;
        return;
      }
      context.hidden = false;
      ctxBtn.setAttribute('aria-expanded', 'true');
      ctxBtn.textContent = t.hideContext;
      if (loaded || loading) return;
      loading = true;
      clear(context);
      context.setAttribute('aria-busy', 'true');
      context.appendChild(el('p', 'context-loading', t.loadingContext));
      self._getDocument(docId).then(function (doc) {
        clear(context);
        self._renderContext(context, doc, p);
        loaded = true;
      }, function () {
        clear(context);
        context.appendChild(el('p', 'context-error', t.contextError));
      }).then(function () {
        loading = false;
        context.setAttribute('aria-busy', 'false');
      });
    });

    var resetTimer = null;
    copyBtn.addEventListener('click', function () {
      var start = isNum(p.start) ? p.start : '';
      var end = isNum(p.end) ? p.end : '';
      var citation = (title || docId) + ' [' + docId + ':' + start + '-' + end + ']\n' + text;
      copyText(citation, self._root).then(function (ok) {
        copyBtn.textContent = ok ? t.copied : t.copyFailed;
        copyBtn.classList.toggle('is-copied', !!ok);
        if (resetTimer) clearTimeout(resetTimer);
        resetTimer = setTimeout(function () {
          copyBtn.textContent = t.copy;
          copyBtn.classList.remove('is-copied');
          resetTimer = null;
        }, 2000);
      });
    });

    return item;
  };

  QaWidget.prototype._getDocument = function (docId) {
    var cache = this._docCache;
    if (cache.has(docId)) return cache.get(docId);
    var promise = requestJSON(this._url('/v1/documents/' + encodeURIComponent(docId)),
      { method: 'GET', headers: { accept: 'application/json' } }, DOCUMENT_TIMEOUT_MS)
      .then(function (res) {
        if (!res.ok || !res.data || typeof res.data !== 'object' || typeof res.data.text !== 'string') {
          throw { status: res.status, data: res.data };
        }
        return res.data;
      });
    cache.set(docId, promise);
    promise.catch(function () { cache.delete(docId); });
    return promise;
  };

  QaWidget.prototype._renderContext = function (context, doc, p) {
    var t = this._t;
    var raw = doc.text;
    var ix = makeIndexer(raw);
    var span = normSpan([p.start, p.end], ix.length);
    if (!span) {
      context.appendChild(el('p', 'context-error', t.contextUnavailable));
      return;
    }
    var s = span[0];
    var e = span[1];
    var from = Math.max(0, s - CONTEXT_CHARS);
    var to = Math.min(ix.length, e + CONTEXT_CHARS);

    if (typeof doc.source === 'string' && doc.source.trim()) {
      context.appendChild(el('p', 'context-meta', t.contextSource + '：' + doc.source.trim()));
    }
    var before = raw.slice(ix.unit(from), ix.unit(s));
    var inner = raw.slice(ix.unit(s), ix.unit(e));
    var after = raw.slice(ix.unit(e), ix.unit(to));
    // Whitespace at the passage's edges belongs to its neighbours, so the
    // highlight starts and ends on text.
    if (/\S/.test(inner)) {
      var lead = /^\s*/.exec(inner)[0];
      var trail = /\s*$/.exec(inner)[0];
      before += lead;
      after = trail + after;
      inner = inner.slice(lead.length, inner.length - trail.length);
    }
    var block = el('div', 'context-text');
    if (from > 0) block.appendChild(el('span', 'context-ellipsis', '…'));
    block.appendChild(document.createTextNode(tidyBreaks(before).replace(/^\s+/, '')));
    var hit = el('mark', 'context-hit', tidyBreaks(inner));
    block.appendChild(hit);
    block.appendChild(document.createTextNode(tidyBreaks(after).replace(/\s+$/, '')));
    if (to < ix.length) block.appendChild(el('span', 'context-ellipsis', '…'));
    context.appendChild(block);
    // The block scrolls on its own; start with the passage itself in view.
    if (block.scrollHeight > block.clientHeight) {
      block.scrollTop = Math.max(0, hit.offsetTop - 40);
    }
  };

  /* ------------------------------------------------------------------ */
  /* Boot                                                                */
  /* ------------------------------------------------------------------ */

  if (!window.customElements.get(TAG)) {
    window.customElements.define(TAG, QaWidget);
  }

  function mount() {
    if (document.querySelector(TAG)) return; // embedded twice: keep one widget
    var widget = document.createElement(TAG);
    widget._config = CONFIG;
    document.body.appendChild(widget);
  }

  if (document.body) {
    mount();
  } else {
    document.addEventListener('DOMContentLoaded', mount);
  }
})();
