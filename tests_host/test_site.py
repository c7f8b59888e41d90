"""The sample site in www/: complete, self-contained, and its .gz copies current.

Runs under CPython with the standard library only (no browser): the pages link each other
through a shared nav, every local reference resolves to a file, nothing points off the board,
the site is big enough to be a real load, and tools/gzip_site --check passes.
"""
import gzip
import os
import re
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WWW = os.path.join(ROOT, "www")
GZIP_SITE = os.path.join(ROOT, "tools", "gzip_site")

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")
TEXT_EXT = (".html", ".htm", ".css", ".js", ".svg", ".json", ".txt", ".xml")
# XML namespace names are identifiers, never fetched; they are the only http:// allowed.
NAMESPACES = ("http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink", "http://www.w3.org/1999/xhtml")


def site_files():
    out = []
    for top, dirs, files in os.walk(WWW):
        dirs.sort()
        for name in sorted(files):
            if not name.endswith(".gz"):
                out.append(os.path.relpath(os.path.join(top, name), WWW).replace(os.sep, "/"))
    return out


FILES = site_files()
PAGES = [f for f in FILES if f.endswith(".html")]
TEXTS = [f for f in FILES if f.endswith(TEXT_EXT)]



def read_text(rel):
    with open(os.path.join(WWW, rel), encoding="utf-8") as f:
        return f.read()


def read_bytes(rel):
    with open(os.path.join(WWW, rel), "rb") as f:
        return f.read()


class Page(HTMLParser):
    """Collects references, the nav's links and a few head facts of one page."""

    URL_ATTRS = {"href", "src", "action", "poster", "data", "formaction", "srcset"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.refs = []  # (tag, attr, value)
        self.nav_links = []
        self.nav_depth = 0
        self.navs = 0
        self.tags = {}
        self.attrs_of = []  # (tag, dict)
        self.styles = []  # inline style attributes and <style> bodies
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        d = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs_of.append((tag, d))
        if tag == "nav" and "site-nav" in (d.get("class") or "").split():
            self.navs += 1
            self.nav_depth = 1
        elif tag == "nav" and self.nav_depth:
            self.nav_depth += 1
        for name, value in attrs:
            if value is None:
                continue
            if name in self.URL_ATTRS:
                if name == "srcset":
                    for part in value.split(","):
                        if part.strip():
                            self.refs.append((tag, name, part.split()[0]))
                else:
                    self.refs.append((tag, name, value))
            if name == "style":
                self.styles.append(value)
        if tag == "a" and self.nav_depth and d.get("href"):
            self.nav_links.append(d["href"])
        if tag == "style":
            self._in_style = True

    def handle_endtag(self, tag):
        if tag == "nav" and self.nav_depth:
            self.nav_depth -= 1
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def parse(rel):
    p = Page()
    p.feed(read_text(rel))
    p.close()
    return p


def resolve(base_rel, ref):
    """The www-relative path a local reference points at, or None for in-page anchors."""
    parts = urlsplit(ref)
    path = unquote(parts.path)
    if not path:
        return None  # "#anchor" or "?query" on the same page
    if path.startswith("/"):
        target = path.lstrip("/")
    else:
        target = os.path.normpath(os.path.join(os.path.dirname(base_rel), path)).replace(os.sep, "/")
    if target in ("", "."):
        target = "index.html"
    if target.endswith("/"):
        target += "index.html"
    return target


CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)|@import\s+(['"])([^'"]+)\3""", re.I)


def css_refs(text):
    out = []
    for m in CSS_URL.finditer(text):
        ref = m.group(2) or m.group(4)
        if ref and not ref.startswith("data:"):
            out.append(ref.strip())
    return out


# --- the shape of the site ------------------------------------------------------


def test_enough_pages():
    assert len(PAGES) >= 5, PAGES
    assert "index.html" in PAGES


def test_enough_images():
    images = [f for f in FILES if f.startswith("img/") and f.lower().endswith(IMAGE_EXT)]
    assert len(images) >= 4, images
    kinds = {os.path.splitext(f)[1].lower() for f in images}
    assert ".svg" in kinds and (".png" in kinds or ".jpg" in kinds or ".jpeg" in kinds), kinds


def test_big_enough():
    total = sum(os.path.getsize(os.path.join(WWW, f)) for f in FILES)
    assert total >= 150 * 1024, "www/ holds %d bytes without .gz, want at least 150 KB" % total


def test_one_shared_stylesheet_and_script():
    assert "css/site.css" in FILES
    assert "js/status.js" in FILES
    for page in PAGES:
        p = parse(page)
        sheets = [d.get("href") for t, d in p.attrs_of if t == "link" and "stylesheet" in (d.get("rel") or "")]
        assert sheets == ["css/site.css"], (page, sheets)
        scripts = [d.get("src") for t, d in p.attrs_of if t == "script"]
        assert "js/status.js" in scripts, (page, scripts)


def test_file_names_are_plain():
    # The board's file system and the firmware's static route: lower case, no spaces.
    for f in FILES:
        assert re.fullmatch(r"[a-z0-9][a-z0-9._/-]*", f), f


@pytest.mark.parametrize("page", PAGES)
def test_page_head(page):
    text = read_text(page)
    p = parse(page)
    assert text.lower().startswith("<!doctype html>"), page
    assert any(t == "html" and d.get("lang") for t, d in p.attrs_of), page
    assert any(t == "meta" and (d.get("charset") or "").lower() == "utf-8" for t, d in p.attrs_of), page
    assert any(t == "meta" and d.get("name") == "viewport" for t, d in p.attrs_of), page
    assert p.tags.get("title") == 1, page
    icons = [d.get("href") for t, d in p.attrs_of if t == "link" and "icon" in (d.get("rel") or "").split()]
    assert icons, "%s names no favicon" % page
    # Images carry alt text and dimensions, so pages do not jump while they load slowly.
    for t, d in p.attrs_of:
        if t == "img":
            assert "alt" in d and d.get("width") and d.get("height"), (page, d)


@pytest.mark.parametrize("page", PAGES)
def test_nav_links_every_page(page):
    p = parse(page)
    assert p.navs == 1, "%s: want exactly one nav.site-nav, found %d" % (page, p.navs)
    linked = {resolve(page, h) for h in p.nav_links}
    missing = set(PAGES) - linked
    assert not missing, "%s: the nav does not link %s" % (page, sorted(missing))
    current = [d.get("href") for t, d in p.attrs_of if t == "a" and d.get("aria-current") == "page"]
    assert current == [os.path.basename(page)], (page, current)


# --- references -------------------------------------------------------------------


def all_refs():
    """(file, reference) for every URL in every HTML and CSS file (and SVG hrefs)."""
    out = []
    for f in TEXTS:
        if f.endswith(".html"):
            p = parse(f)
            out += [(f, v) for _, _, v in p.refs]
            for style in p.styles:
                out += [(f, v) for v in css_refs(style)]
        elif f.endswith(".css"):
            out += [(f, v) for v in css_refs(read_text(f))]
        elif f.endswith(".svg"):
            text = read_text(f)
            out += [(f, v) for v in re.findall(r"""(?:xlink:)?href\s*=\s*["']([^"']+)["']""", text)]
            out += [(f, v) for v in css_refs(text)]
    return out


def test_local_references_resolve():
    bad = []
    for f, ref in all_refs():
        if ref.startswith(("data:", "mailto:")):
            continue
        scheme = urlsplit(ref).scheme
        if scheme or ref.startswith("//"):
            bad.append((f, ref, "external"))
            continue
        if ref.startswith("#"):
            if f.endswith(".svg"):
                continue  # a reference to a def in the same SVG
            anchor = ref[1:]
            if anchor and not re.search(r"""\bid=["']%s["']""" % re.escape(anchor), read_text(f)):
                bad.append((f, ref, "no such id"))
            continue
        target = resolve(f, ref)
        if target is None:
            continue
        if target.startswith("../") or not os.path.isfile(os.path.join(WWW, target)):
            bad.append((f, ref, "no file %s" % target))
            continue
        frag = urlsplit(ref).fragment
        if frag and target.endswith(".html"):
            if not re.search(r"""\bid=["']%s["']""" % re.escape(frag), read_text(target)):
                bad.append((f, ref, "no id %s in %s" % (frag, target)))
    assert not bad, bad


def test_every_image_is_used():
    used = {resolve(f, ref) for f, ref in all_refs() if not urlsplit(ref).scheme and not ref.startswith("#")}
    unused = [f for f in FILES if f.startswith("img/") and f not in used]
    assert not unused, unused


EXTERNAL = re.compile(r"https?://[^\s\"'<>)]*", re.I)
PROTOCOL_RELATIVE = re.compile(
    r"""(?:\b(?:href|src|action|poster|data|srcset)\s*=\s*["']\s*//)"""  # HTML/SVG attributes
    r"""|(?:url\(\s*["']?\s*//)"""  # CSS
    r"""|(?:@import\s+["']\s*//)"""
    r"""|(?:["'`]//[a-z0-9-]+\.[a-z0-9.-]+)""",  # JS strings such as fetch("//host/x")
    re.I,
)


@pytest.mark.parametrize("rel", TEXTS)
def test_no_external_urls(rel):
    text = read_text(rel)
    found = []
    for m in EXTERNAL.finditer(text):
        url = m.group(0).rstrip(".,;")
        if url in NAMESPACES:
            before = text[max(0, m.start() - 40):m.start()]
            if re.search(r"xmlns(?::\w+)?\s*=\s*[\"']$", before):
                continue
        found.append(url)
    found += [m.group(0) for m in PROTOCOL_RELATIVE.finditer(text)]
    assert not found, "%s points off the board: %s" % (rel, found)


def test_no_external_urls_in_binaries():
    for f in FILES:
        if f.endswith(TEXT_EXT):
            continue
        data = read_bytes(f)
        assert b"http://" not in data and b"https://" not in data, f


# --- images are what their names say ------------------------------------------------


def png_chunks(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    i = 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        kind, body = data[i + 4:i + 8], data[i + 8:i + 8 + n]
        (crc,) = struct.unpack(">I", data[i + 8 + n:i + 12 + n])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, kind
        yield kind, body
        i += 12 + n


@pytest.mark.parametrize("rel", [f for f in FILES if f.endswith(".png")])
def test_png_is_valid(rel):
    chunks = list(png_chunks(read_bytes(rel)))
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    w, h, depth, color = struct.unpack(">IIBB", chunks[0][1][:10])
    idat = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    assert depth == 8 and len(idat) == h * (1 + w * channels), rel


def test_favicon():
    assert "favicon.svg" in FILES or "favicon.ico" in FILES
    if "favicon.ico" in FILES:
        data = read_bytes("favicon.ico")
        reserved, kind, count = struct.unpack("<HHH", data[:6])
        assert (reserved, kind) == (0, 1) and count >= 1
        size, offset = struct.unpack("<II", data[14:22])
        assert offset + size <= len(data)


def test_svgs_are_well_formed():
    import xml.dom.minidom

    for f in FILES:
        if f.endswith(".svg"):
            doc = xml.dom.minidom.parseString(read_bytes(f))
            assert doc.documentElement.tagName == "svg", f


# --- the status script ------------------------------------------------------------


def test_status_js_polls_the_api():
    js = read_text("js/status.js")
    assert '"/api/status"' in js or "'/api/status'" in js
    assert "document.hidden" in js and "visibilitychange" in js
    assert "2000" in js  # the polling period


def test_status_page_has_the_js_targets():
    ids = set(re.findall(r"""\bid=["']([^"']+)["']""", read_text("status.html")))
    js = read_text("js/status.js")
    wanted = set(re.findall(r"""\$\(\s*["']([\w-]+)["']\s*\)""", js)) | set(re.findall(r"""setText\(\s*["']([\w-]+)["']""", js))
    missing = wanted - ids
    assert not missing, "status.js looks for ids that status.html lacks: %s" % sorted(missing)
    for page in PAGES:
        assert 'id="live-badge"' in read_text(page), page


# --- pre-compressed copies ------------------------------------------------------


def test_gz_copies_match_their_sources():
    gzs = []
    for top, _, files in os.walk(WWW):
        gzs += [os.path.relpath(os.path.join(top, n), WWW).replace(os.sep, "/") for n in files if n.endswith(".gz")]
    assert gzs, "no .gz files: run tools/gzip_site"
    for gz in gzs:
        src = gz[:-3]
        assert src in FILES, "%s has no source" % gz
        packed = read_bytes(gz)
        assert gzip.decompress(packed) == read_bytes(src), gz
        assert len(packed) < len(read_bytes(src)), gz
        assert packed[3] & 0x08 == 0, "%s stores a file name" % gz  # FNAME flag
        assert packed[4:8] == b"\0\0\0\0", "%s stores an mtime" % gz
    for f in FILES:
        if f.endswith((".html", ".css", ".js")):
            assert f + ".gz" in gzs, "%s has no .gz" % f


def test_gzip_site_check_passes():
    r = subprocess.run([sys.executable, GZIP_SITE, "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_gzip_site_is_deterministic_and_checks(tmp_path):
    site = tmp_path / "site"
    (site / "css").mkdir(parents=True)
    (site / "index.html").write_text("<p>hello</p>\n" * 200)
    (site / "css" / "a.css").write_text("body { color: red }\n" * 100)
    (site / "tiny.txt").write_text("x")
    (site / "pic.png").write_bytes(b"\x89PNG" + b"\0" * 500)

    def run(*args):
        return subprocess.run([sys.executable, GZIP_SITE, *args, str(site)], capture_output=True, text=True)

    r = run("--check")
    assert r.returncode != 0 and "index.html.gz" in r.stdout and "css/a.css.gz" in r.stdout
    assert not (site / "index.html.gz").exists()  # --check writes nothing
    assert run().returncode == 0
    first = (site / "index.html.gz").read_bytes()
    assert gzip.decompress(first) == (site / "index.html").read_bytes()
    assert not (site / "tiny.txt.gz").exists()  # not smaller: not kept
    assert not (site / "pic.png.gz").exists()  # already compressed: skipped
    assert run("--check").returncode == 0
    (site / "index.html.gz").unlink()
    assert run().returncode == 0
    assert (site / "index.html.gz").read_bytes() == first  # same bytes every time
    (site / "index.html").write_text("<p>changed</p>\n" * 200)
    r = run("--check")
    assert r.returncode != 0 and "stale" in r.stdout
    assert run().returncode == 0 and run("--check").returncode == 0


def test_gzip_site_is_executable():
    assert os.access(GZIP_SITE, os.X_OK)
    with open(GZIP_SITE, "rb") as f:
        assert f.readline() == b"#!/usr/bin/env python3\n"
