#!/usr/bin/env python3
"""Check the built documentation site (_site/) the way a reader meets it, in a real browser.

Serves _site/ with http.server on 127.0.0.1 (a free port) and drives Debian's headless Chromium over the
DevTools protocol (a local websocket; the small client below needs only the standard library). Every
HTML page is loaded and rendered; a page passes when:
  - it answers 200 and renders: a <title> and an <h1>, no uncaught JavaScript error;
  - it is reachable from the navigation of the home page (404.html excepted);
  - every internal link resolves (200 from the local server) and, for a link with #anchor to a page,
    that page has an element with that id;
  - every <img> loads (naturalWidth > 0), and each page named by --expect-images shows at least one;
  - nothing is fetched from, or referenced as script/style/font on, another host: every request the
    page makes to a host other than the local server is blocked and reported, and the HTML and its
    CSS are scanned for external scripts, stylesheets, @import and url(). Links (<a href>) to other
    hosts are allowed: following them is the reader's choice, they are not loaded with the page.
Screenshots (PNG) of the home page and of each --expect-images page (the whole page up to 6000 px, and
one screen scrolled to its first image) go to _site_check/. Prints one line per page and closes with `site: N passed, M failed`;
exits 1 when a page failed, 2 when the check could not run.

Usage: python .ci/check_site.py [--site _site] [--expect-images PAGE ...] [--out _site_check]
PAGE is a page name such as 08_eval or 08_eval.html. Default: 08_eval and 05_train, each only if it
exists (a warning otherwise). Chromium: --chromium PATH, else $CHROMIUM, else /usr/bin/chromium
(Debian: apt-get install -y chromium)."""
import argparse, base64, functools, http.server, json, os, re, select, shutil, signal, socket, struct
import subprocess, sys, tempfile, threading, time, urllib.error, urllib.parse, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--no-default-browser-check",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio", "--window-size=1280,1000"]
WIDTH, HEIGHT = 1280, 1000
MAX_SHOT = 6000  # screenshots of a whole page stop there
PAGE_TIMEOUT = 30.0


# ---- a minimal websocket client (RFC 6455), enough for the DevTools protocol on 127.0.0.1 ----
class WebSocket:
    def __init__(self, url, timeout=30.0):
        u = urllib.parse.urlparse(url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {u.path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = bytearray()
        while b"\r\n\r\n" not in self.buf: self._fill()
        end = self.buf.index(b"\r\n\r\n")
        status = bytes(self.buf[:end]).split(b"\r\n")[0]
        del self.buf[:end + 4]
        if b" 101 " not in status + b" ": raise ConnectionError(f"DevTools websocket handshake failed: {status!r}")

    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk: raise ConnectionError("the DevTools connection was closed (did Chromium crash?)")
        self.buf += chunk

    def _read(self, n):
        while len(self.buf) < n: self._fill()
        data = bytes(self.buf[:n]); del self.buf[:n]
        return data

    def _frame(self, opcode, payload):
        n, mask = len(payload), os.urandom(4)
        head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else
               bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else bytes([0x80 | 127]) + struct.pack(">Q", n))
        if n:
            m = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
            payload = (int.from_bytes(payload, "big") ^ m).to_bytes(n, "big")
        self.sock.sendall(head + mask + payload)

    def send(self, text): self._frame(0x1, text.encode())

    def recv(self, timeout):
        "The next text message, or None when none starts within `timeout` seconds."
        if not self.buf and not select.select([self.sock], [], [], max(0.0, timeout))[0]: return None
        parts = []
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126: n = struct.unpack(">H", self._read(2))[0]
            elif n == 127: n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask: data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            op = b0 & 0x0F
            if op == 0x8: raise ConnectionError("the DevTools connection was closed by Chromium")
            if op == 0x9: self._frame(0xA, data); continue
            if op == 0xA: continue
            parts.append(data)
            if b0 & 0x80: return b"".join(parts).decode("utf-8", "replace")


# ---- Chromium driven over the DevTools protocol ----
class Browser:
    def __init__(self, chromium, local_netloc):
        self.local, self.state = local_netloc, None
        self.profile = Path(tempfile.mkdtemp(prefix="check-site-chromium-"))
        self.logf = open(self.profile.parent/(self.profile.name + ".log"), "wb")
        self.proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                                      "about:blank"], stdout=self.logf, stderr=self.logf, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        port_file, deadline = self.profile/"DevToolsActivePort", time.time() + 60
        while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
            if self.proc.poll() is not None: raise RuntimeError(f"Chromium exited with status {self.proc.returncode}:\n{self.log_tail()}")
            if time.time() > deadline: raise RuntimeError(f"Chromium did not open its DevTools port within 60 s:\n{self.log_tail()}")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        self.ws = WebSocket(f"ws://127.0.0.1:{port}{path}")
        self.next_id, self.results, self.ignored = 0, {}, set()
        self.version = self.call("Browser.getVersion")["product"]
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for method, params in [("Page.enable", {}), ("Network.enable", {}), ("Runtime.enable", {}),
                               ("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}),
                               ("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": HEIGHT,
                                                                       "deviceScaleFactor": 1, "mobile": False})]:
            self.call(method, params, session=self.session)

    def log_tail(self):
        self.logf.flush()
        return (self.profile.parent/(self.profile.name + ".log")).read_text(errors="replace")[-2000:]

    def _send(self, method, params=None, session=None):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session: msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        return self.next_id

    def call(self, method, params=None, session=None, timeout=PAGE_TIMEOUT):
        i, deadline = self._send(method, params, session), time.time() + timeout
        while i not in self.results:
            if time.time() > deadline: raise TimeoutError(f"{method}: no answer from Chromium within {timeout:.0f} s")
            self.pump(deadline - time.time())
        r = self.results.pop(i)
        if "error" in r: raise RuntimeError(f"{method}: {r['error'].get('message')}")
        return r.get("result", {})

    def pump(self, timeout):
        raw = self.ws.recv(timeout)
        if raw is None: return False
        m = json.loads(raw)
        if "id" in m:
            if m["id"] in self.ignored: self.ignored.discard(m["id"])
            else: self.results[m["id"]] = m
        else: self.on_event(m["method"], m.get("params", {}))
        return True

    def on_event(self, method, p):
        st = self.state
        if method == "Fetch.requestPaused":
            url = p["request"]["url"]
            u = urllib.parse.urlsplit(url)
            if u.scheme in ("http", "https", "ws", "wss") and u.netloc != self.local:
                if st is not None: st["external"].append(f"{p.get('resourceType', '?').lower()} {url}")
                cmd = ("Fetch.failRequest", {"requestId": p["requestId"], "errorReason": "BlockedByClient"})
            else: cmd = ("Fetch.continueRequest", {"requestId": p["requestId"]})
            self.ignored.add(self._send(*cmd, session=self.session))
            return
        if st is None: return
        st["last"] = time.time()
        if method == "Network.requestWillBeSent": st["inflight"][p["requestId"]] = p["request"]["url"]
        elif method == "Network.responseReceived":
            r = p["response"]
            st["status"][r["url"]] = r["status"]
            st["inflight"].pop(p["requestId"], None)
            if p.get("type") == "Document" and st["doc_status"] is None: st["doc_status"] = r["status"]
        elif method in ("Network.loadingFinished", "Network.responseReceivedExtraInfo"):
            st["inflight"].pop(p["requestId"], None)
        elif method == "Network.loadingFailed":
            url = st["inflight"].pop(p["requestId"], "?")
            if urllib.parse.urlsplit(url).netloc == self.local and not p.get("canceled"):
                st["failed"].append(f"{url} ({p.get('errorText')})")
        elif method == "Page.loadEventFired": st["loaded"] = True
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            st["js_errors"].append((d.get("exception", {}).get("description") or d.get("text", "?")).splitlines()[0])

    def visit(self, url):
        "Load `url`, wait for the load event and a quiet network, and return what was seen."
        self.state = st = {"external": [], "failed": [], "status": {}, "doc_status": None, "inflight": {},
                           "loaded": False, "js_errors": [], "last": time.time()}
        nav = self.call("Page.navigate", {"url": url}, session=self.session)
        if nav.get("errorText"): st["failed"].append(f"{url} ({nav['errorText']})")
        deadline = time.time() + PAGE_TIMEOUT
        while time.time() < deadline:
            self.pump(0.1)
            quiet = time.time() - st["last"]  # (a worker's requests are answered on the worker's own target)
            if st["loaded"] and (quiet > 0.5 and not st["inflight"] or quiet > 2.0): break
        else: st["failed"].append(f"{url} (not loaded within {PAGE_TIMEOUT:.0f} s)")
        st["dom"] = self.evaluate(PAGE_JS) if st["loaded"] else None
        return st

    def evaluate(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "awaitPromise": True, "returnByValue": True},
                      session=self.session)
        if "exceptionDetails" in r: raise RuntimeError(f"page script failed: {r['exceptionDetails'].get('text')}")
        return r["result"].get("value")

    def screenshot(self, path, scroll_to_image=False):
        if scroll_to_image:
            found = self.evaluate("(() => { const i = Array.from(document.querySelectorAll('article img, .md-content img'))"
                                  ".find(i => i.naturalWidth > 0); if (!i) return false;"
                                  " i.scrollIntoView({block: 'center'}); return true; })()")
            if not found: return False
        else: self.evaluate("window.scrollTo(0, 0)")
        time.sleep(0.3)
        params = {"format": "png"}
        if not scroll_to_image:  # the whole page, up to MAX_SHOT pixels high
            height = min(MAX_SHOT, int(self.evaluate("document.documentElement.scrollHeight")))
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1})
        data = self.call("Page.captureScreenshot", params, session=self.session)["data"]
        path.write_bytes(base64.b64decode(data))
        return True

    def close(self):
        try: self.ws.sock.close()
        except Exception: pass
        if self.proc.poll() is None:
            try: os.killpg(self.proc.pid, signal.SIGTERM)  # the process group Chromium was started in
            except ProcessLookupError: pass
            try: self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL); self.proc.wait(10)
        self.logf.close()
        shutil.rmtree(self.profile, ignore_errors=True)
        (self.profile.parent/(self.profile.name + ".log")).unlink(missing_ok=True)


# What the page shows, read in the page itself after it rendered (images are waited for, up to 10 s each).
PAGE_JS = r"""(async () => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(i => { i.loading = 'eager'; return i.complete ? null :
    Promise.race([i.decode().catch(() => null), new Promise(r => setTimeout(r, 10000))]); }));
  const h1 = document.querySelector('article h1, .md-content h1, h1');
  return {
    title: document.title.trim(),
    h1: h1 ? h1.textContent.replace('¶', '').trim() : '',
    textLength: document.body ? document.body.innerText.length : 0,
    links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
    nav: Array.from(document.querySelectorAll('.md-nav--primary > .md-nav__list > .md-nav__item > a.md-nav__link[href]'))
              .map(a => ({href: a.href, text: a.textContent.trim()})),
    images: imgs.map(i => ({src: (i.currentSrc || i.src).slice(0, 200), width: i.naturalWidth,
                            shown: i.getBoundingClientRect().width > 0})),
    ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id)
              .concat(Array.from(document.querySelectorAll('a[name]')).map(a => a.name)),
    scripts: Array.from(document.scripts).map(s => s.src).filter(Boolean),
    linked: Array.from(document.querySelectorAll('link[href]')).map(l => ({rel: l.rel, href: l.href})),
  };
})()"""

# Static scan: references that make a browser fetch from another host.
EXTERNAL_HTML = [re.compile(p, re.I) for p in (
    r"<script\b[^>]*\bsrc\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]+)",
    r"<link\b(?=[^>]*\brel\s*=\s*[\"']?[^\"'>]*(?:stylesheet|preload|modulepreload|preconnect|dns-prefetch|icon|manifest))"
    r"[^>]*\bhref\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]+)",
    r"<(?:img|iframe|source|video|audio|embed)\b[^>]*\bsrc\s*=\s*[\"']?((?:https?:)?//[^\"'\s>]+)",
    r"\bimport\s*\(\s*[\"']((?:https?:)?//[^\"']+)", r"\bfrom\s*[\"']((?:https?:)?//[^\"']+)[\"']",
    r"@import\s+(?:url\()?\s*[\"']?((?:https?:)?//[^\"')\s]+)", r"url\(\s*[\"']?((?:https?:)?//[^\"')\s]+)")]
EXTERNAL_CSS = EXTERNAL_HTML[-2:]


def external_refs(text, patterns, local):
    return sorted({m[1] for p in patterns for m in p.finditer(text) if urllib.parse.urlsplit(m[1]).netloc != local})


_CODE = re.compile(r"<script\b[^>]*>(.*?)</script>|<style\b[^>]*>(.*?)</style>|\bstyle\s*=\s*\"([^\"]*)\"", re.I | re.S)

def html_external_refs(html, local):
    "External references of a page: tags that load from another host anywhere, and import/url() only in scripts and styles (not in the text a page shows, e.g. a URL inside a table of routed queries)."
    code = "\n".join("".join(g) for g in _CODE.findall(html))
    return sorted(set(external_refs(html, EXTERNAL_HTML[:3], local)) | set(external_refs(code, EXTERNAL_HTML[3:], local)))


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


def serve(site):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"127.0.0.1:{httpd.server_address[1]}"


def http_status(url, cache={}):
    if url not in cache:
        try:
            with urllib.request.urlopen(url, timeout=10) as r: cache[url] = r.status
        except urllib.error.HTTPError as e: cache[url] = e.code
        except Exception as e: cache[url] = f"{type(e).__name__}: {e}"
    return cache[url]


def page_name(arg):
    "08_eval, 08_eval.html or _site/08_eval.html -> 08_eval.html"
    name = Path(arg).name
    return name if name.endswith(".html") else name + ".html"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--site", default=str(ROOT/"_site"), help="the built site (default: _site)")
    ap.add_argument("--out", default=str(ROOT/"_site_check"), help="where screenshots go (default: _site_check)")
    ap.add_argument("--expect-images", nargs="*", metavar="PAGE", default=None,
                    help="pages that must show at least one image (default: 08_eval and 05_train where they exist)")
    ap.add_argument("--chromium", default=os.environ.get("CHROMIUM") or "/usr/bin/chromium")
    args = ap.parse_args(argv)
    site, out = Path(args.site).resolve(), Path(args.out).resolve()
    t0 = time.time()
    if not (site/"index.html").exists():
        print(f"check_site: {site}/index.html not found: build the site first (bash .ci/docs)")
        print("site: 0 passed, 1 failed"); return 2
    chromium = args.chromium if Path(args.chromium).exists() else shutil.which(args.chromium) or shutil.which("chromium")
    if not chromium:
        print(f"check_site: Chromium not found at {args.chromium}: apt-get install -y chromium (Debian)")
        print("site: 0 passed, 1 failed"); return 2
    pages = sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html"))
    pages.remove("index.html"); pages.insert(0, "index.html")
    if args.expect_images is None:
        expect = []
        for name in ("08_eval", "05_train"):
            if page_name(name) in pages: expect.append(page_name(name))
            else: print(f"warning: {name}.html is not in the site yet: its images are not checked")
    else: expect = [page_name(a) for a in args.expect_images]
    shots = ["index.html"] + [p for p in expect if p in pages]
    out.mkdir(parents=True, exist_ok=True)

    httpd, local = serve(site)
    base = f"http://{local}/"
    browser = None
    results = {}  # page -> dict(st, problems, seconds)
    try:
        browser = Browser(chromium, local)
        print(f"check_site: {len(pages)} pages of {site.relative_to(ROOT) if site.is_relative_to(ROOT) else site} "
              f"served at {base} | {browser.version}")
        for page in pages:
            t = time.time()
            st = browser.visit(base + page)
            saved = []
            if page in shots and st["dom"]:
                stem = Path(page).stem
                if browser.screenshot(out/f"{stem}.png"): saved.append(f"{stem}.png")
                if page != "index.html" and browser.screenshot(out/f"{stem}-image.png", scroll_to_image=True):
                    saved.append(f"{stem}-image.png")
            results[page] = {"st": st, "seconds": time.time() - t, "shots": saved}
    except Exception as e:
        print(f"check_site: could not drive Chromium: {e}")
        print(f"site: {0} passed, {len(pages)} failed"); return 2
    finally:
        if browser: browser.close()

    # Judge each page: what it showed, the links it has, what it references.
    ids = {p: set(r["st"]["dom"]["ids"]) for p, r in results.items() if r["st"]["dom"]}
    home = results["index.html"]["st"]["dom"] or {}
    in_nav = {urllib.parse.urlsplit(n["href"]).path.lstrip("/") or "index.html" for n in home.get("nav", [])}
    passed = failed = 0
    for page in pages:
        r = results[page]; st, dom, problems = r["st"], r["st"]["dom"], []
        if st["doc_status"] != 200: problems.append(f"status {st['doc_status']}")
        problems += [f"request failed: {f}" for f in st["failed"]]
        problems += [f"answered {code}: {url}" for url, code in st["status"].items()
                     if code >= 400 and urllib.parse.urlsplit(url).netloc == local]
        problems += [f"fetches from another host: {x}" for x in st["external"]]
        problems += [f"JavaScript error: {e}" for e in st["js_errors"]]
        html = (site/page).read_text(encoding="utf-8", errors="replace")
        problems += [f"references another host: {x}" for x in html_external_refs(html, local)]
        n_links = n_img = 0
        if dom:
            if not dom["title"]: problems.append("no <title>")
            if not dom["h1"]: problems.append("no <h1> heading")
            if dom["textLength"] < 50: problems.append(f"almost no text ({dom['textLength']} characters)")
            if page not in ("index.html", "404.html") and page not in in_nav: problems.append("not in the navigation")
            for css in {l["href"] for l in dom["linked"] if "stylesheet" in l["rel"]}:
                u = urllib.parse.urlsplit(css)
                if u.netloc == local and (site/u.path.lstrip("/")).is_file():
                    text = (site/u.path.lstrip("/")).read_text(encoding="utf-8", errors="replace")
                    problems += [f"{u.path.lstrip('/')} references another host: {x}" for x in external_refs(text, EXTERNAL_CSS, local)]
            for href in dict.fromkeys(dom["links"]):
                u = urllib.parse.urlsplit(href)
                if u.scheme not in ("http", "https") or u.netloc != local: continue
                n_links += 1
                target = urllib.parse.urlunsplit((u.scheme, u.netloc, u.path, u.query, ""))
                rel = urllib.parse.unquote(u.path.lstrip("/")) or "index.html"
                status = results[rel]["st"]["doc_status"] if rel in results else http_status(target)
                if status != 200: problems.append(f"broken link: {href} ({status})"); continue
                frag = urllib.parse.unquote(u.fragment)
                if frag and rel in ids and frag not in ids[rel]: problems.append(f"broken anchor: {href} (no id {frag!r} on {rel})")
            for img in dom["images"]:
                n_img += 1
                if img["width"] <= 0: problems.append(f"image does not load: {img['src']}")
            if page in expect and not any(i["width"] > 0 and i["shown"] for i in dom["images"]):
                problems.append("shows no image (expected by --expect-images)")
        else: problems.append("page did not render")
        ok = not problems
        passed, failed = passed + ok, failed + (not ok)
        title = (dom or {}).get("title", "")
        shown = sum(i["width"] > 0 for i in (dom or {}).get("images", []))
        extra = f" | screenshots: {', '.join(r['shots'])}" if r["shots"] else ""
        print(f"{'ok  ' if ok else 'FAIL'}  {page:<24} {title[:48]!r:<50} links {n_links:>3}  images {shown}/{n_img}"
              f"  {r['seconds']:.1f}s{extra}")
        for p in problems[:20]: print(f"        - {p}")
        if len(problems) > 20: print(f"        - ... and {len(problems) - 20} more")
    for p in expect:
        if p not in pages:
            print(f"FAIL  {p:<24} missing: --expect-images names a page that is not in the site")
            failed += 1
    httpd.shutdown()
    nav = " > ".join(n["text"] for n in home.get("nav", []))
    print(f"navigation: {nav}")
    print(f"screenshots in {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}/ | {time.time() - t0:.1f}s")
    print(f"site: {passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


if __name__ == "__main__": sys.exit(main())
