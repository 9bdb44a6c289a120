#!/usr/bin/env python
"""Build the documentation site from the notebooks, offline and without Quarto.

1. nbdev's own notebook processing (`nbdev.serve.proc_nbs`, the step `nbdev_proc_nbs` runs after its
   Quarto install check) writes `_proc/`: directives applied, `show_doc` cells executed into markdown.
2. The processed notebooks are staged in `_proc/_mkdocs/docs/`, turning the Quarto cell options that
   nbdev leaves in place (`echo`, `output`, `include`) into what mkdocs-jupyter understands, and a
   MkDocs config is generated there: navigation in pipeline order (index first, then by number).
3. MkDocs Material + mkdocs-jupyter (`execute: false`, no web fonts) renders `_site/`. This file is
   also the MkDocs hook that rewrites nbdev's doc links to the local pages and drops the CDN scripts
   (MathJax, mermaid) that nbconvert adds to every page.

Usage: python .ci/docsite.py [--no-proc]   (run by .ci/docs; --no-proc reuses _proc/ as it is)"""
import configparser, json, re, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS, PROC, SITE = ROOT/"nbs", ROOT/"_proc", ROOT/"_site"
STAGE = PROC/"_mkdocs"
DOCS = STAGE/"docs"
# Files of nbs/ that only Quarto uses: not copied into the site.
QUARTO_ONLY = {"_quarto.yml", "nbdev.yml", "sidebar.yml", "styles.css", "_brand.yml"}

CSS = """\
/* ToolForge docs: notebook cells inside MkDocs Material */
.md-typeset .nbdev-source { float: right; font-size: .75em; }
.md-typeset .nb-summary { font-size: 1.1em; color: var(--md-default-fg-color--light); border-left: none; padding-left: 0; margin-left: 0; }
.jupyter-wrapper .jp-InputPrompt, .jupyter-wrapper .jp-OutputPrompt { display: none; }
.md-typeset .jupyter-wrapper .jp-OutputArea-output pre { white-space: pre; word-break: normal; word-wrap: normal; overflow-x: auto; }
.jupyter-wrapper .jp-RenderedImage img { max-width: 100%; height: auto; }
"""


def settings():
    "The [DEFAULT] section of settings.ini as a dict."
    cp = configparser.ConfigParser(interpolation=configparser.BasicInterpolation())
    cp.read(ROOT/"settings.ini", encoding="utf-8")
    return dict(cp["DEFAULT"])


def order_key(stem):
    "Pipeline order: index first, then notebooks by number (03 < 03a < 04), then unnumbered ones (kaggle)."
    if stem == "index": return (0, 0, "", stem)
    m = re.match(r"(\d+)([a-z]*)_", stem)
    return (1, int(m[1]), m[2], stem) if m else (2, 0, "", stem)


def source_notebooks():
    "The notebooks of nbs/ that become pages (names starting with `_` or `.` are skipped, as nbdev does)."
    nbs = [p for p in NBS.glob("*.ipynb") if not p.name.startswith(("_", "."))]
    return sorted(nbs, key=lambda p: order_key(p.stem))


def mixed_import_cells():
    """(notebook, cell number, first line) of each cell that nbdev's processing would run because it imports,
    though it also does other work. nbdev runs every cell with an import while it builds the docs, `slow`
    or not: such a cell fails on a clean clone when its other code needs a trained run (only a warning
    in nbdev, so this check turns it into an error). Keep imports in cells of their own."""
    import warnings
    from nbdev.process import NBProcessor
    from nbdev.processors import _do_eval
    found = []
    for nb in source_notebooks():
        for i, cell in enumerate(NBProcessor(nb).nb.cells):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                _do_eval(cell)
            if any("imports and other code" in str(w.message) for w in caught):
                found.append((nb.name, i, cell.source.strip().splitlines()[0]))
    return found


def proc():
    "Run nbdev's processing of nbs/ into _proc/ (always from scratch: show_doc output follows the code)."
    if mixed := mixed_import_cells():
        sys.exit("docs: nbdev would run these cells while building the docs, because they import and also do other work;"
                 " move the imports into a cell of their own:\n" + "\n".join(f"  {n} cell {i}: {l}" for n, i, l in mixed))
    from nbdev.serve import proc_nbs
    proc_nbs(force=True)


def _src(cell): return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _text(x): return "".join(x) if isinstance(x, list) else x


_DIRECTIVE = re.compile(r"^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$")


def directives(src):
    "Quarto/nbdev cell options (`#| key: value`) of a code cell, and its source without them."
    opts, lines = {}, []
    for line in src.splitlines():
        m = _DIRECTIVE.match(line)
        if m: opts[m[1].lower()] = m[2].strip().strip("'\"").lower()
        else: lines.append(line)
    return opts, "\n".join(lines).strip("\n")


def frontmatter(nb):
    "The YAML front matter that nbdev puts in a raw first cell (title, description, output-file), and the other cells."
    import yaml
    cells = nb["cells"]
    if cells and cells[0]["cell_type"] == "raw" and _src(cells[0]).lstrip().startswith("---"):
        body = _src(cells[0]).strip().strip("-").strip()
        return (yaml.safe_load(body) or {}), cells[1:]
    return {}, cells


def _source_link(md):
    "show_doc's `[source](url){target=...}` (pandoc attributes) as an HTML link floated right by the CSS."
    return re.sub(r"\[source\]\(([^)]+)\)\{[^}]*\}",
                  r'<a class="nbdev-source" href="\1" target="_blank" rel="noopener">source</a>', md)


def md_cell(text): return {"cell_type": "markdown", "metadata": {}, "source": text}


def stage_cells(cells):
    "Apply the Quarto cell options that nbdev leaves to the renderer."
    out = []
    for c in cells:
        if c["cell_type"] == "markdown":
            s = _src(c)
            if s.strip().startswith("<!-- WARNING: THIS FILE WAS AUTOGENERATED"): continue
            out.append(md_cell(_source_link(s)))
            continue
        if c["cell_type"] != "code": out.append(c); continue
        opts, code = directives(_src(c))
        if "hide" in opts or opts.get("include") == "false": continue
        outputs = [] if opts.get("output") == "false" else c.get("outputs", [])
        asis = opts.get("output") == "asis"
        kept, md = [], []
        for o in outputs:
            data = o.get("data", {})
            if asis and "text/markdown" in data: md.append(_source_link(_text(data["text/markdown"])))
            elif asis and o.get("output_type") == "stream": md.append(_text(o["text"]))
            else: kept.append(o)
        echo = opts.get("echo") != "false" and code.strip()
        if echo or kept:
            meta = dict(c.get("metadata", {}))
            if not echo: meta["transient"] = {"remove_source": True}
            out.append({**c, "source": code, "metadata": meta, "outputs": kept, "execution_count": None})
        out.extend(md_cell(m) for m in md if m.strip())
    return out


def stage():
    "Write the processed notebooks, their assets and mkdocs.yml into _proc/_mkdocs/; return the config path."
    cfg = settings()
    if STAGE.exists(): shutil.rmtree(STAGE)
    (DOCS/"assets").mkdir(parents=True)
    (DOCS/"assets"/"toolforge.css").write_text(CSS, encoding="utf-8")
    # Other files next to the notebooks (images a markdown cell shows) go along, as nbdev copies them.
    for p in PROC.rglob("*"):
        rel = p.relative_to(PROC)
        if (p.is_file() and p.suffix != ".ipynb" and rel.parts[0] != STAGE.name and p.name not in QUARTO_ONLY
                and not any(part.startswith((".", "_")) for part in rel.parts)):
            (DOCS/rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, DOCS/rel)
    nav, pages = [], {}
    for src in source_notebooks():
        pnb = PROC/src.name
        if not pnb.exists(): sys.exit(f"docs: {pnb.relative_to(ROOT)} is missing: nbdev did not process {src.name}")
        nb = json.loads(pnb.read_text(encoding="utf-8"))
        fm, cells = frontmatter(nb)
        title = str(fm.get("title") or src.stem)
        head = f"# {title}"
        if fm.get("description"):  # the `> summary` line, as markdown (it may hold `code`)
            import markdown
            head += "\n\n" + markdown.markdown(str(fm["description"])).replace("<p>", '<p class="nb-summary">', 1)
        nb["cells"] = [md_cell(head)] + stage_cells(cells)
        (DOCS/src.name).write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")
        nav.append({("Home" if src.stem == "index" else title): src.name})
        pages[str(fm.get("output-file") or f"{src.stem}.html")] = f"{src.stem}.html"
    if not nav or source_notebooks()[0].stem != "index": sys.exit("docs: nbs/index.ipynb (the home page) is missing")
    conf = {
        "site_name": cfg.get("title", "ToolForge"),
        "site_description": cfg.get("description", ""),
        "copyright": f"Copyright {cfg.get('copyright', '')}. Source: {cfg.get('git_url', '')}",
        "docs_dir": "docs",
        "site_dir": str(SITE),
        "use_directory_urls": False,  # pages are NAME.html: the site also works opened from disk
        "strict": True,
        "nav": nav,
        "theme": {"name": "material", "font": False,  # no Google fonts: system fonts only
                  "features": ["navigation.footer", "navigation.top", "toc.follow", "content.code.copy"],
                  "palette": {"primary": "indigo", "accent": "indigo"}},
        "plugins": ["search", {"mkdocs-jupyter": {
            "execute": False, "include_source": False, "no_prompt": True, "cache": False,
            "toc_depth": 3, "ignore_h1_titles": True, "include_requirejs": False}}],
        "hooks": [str(Path(__file__).resolve())],
        "extra_css": ["assets/toolforge.css"],
        "extra": {"nbdev_doc_prefix": cfg.get("doc_host", "").rstrip("/") + cfg.get("doc_baseurl", ""),
                  "nbdev_pages": pages, "generator": False},
    }
    import yaml
    path = STAGE/"mkdocs.yml"
    path.write_text("# Generated by .ci/docsite.py: do not edit\n" + yaml.safe_dump(conf, sort_keys=False), encoding="utf-8")
    return path


# ---- MkDocs hook (this file is listed under `hooks:` in the generated mkdocs.yml) ----
_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
_MERMAID = re.compile(r'<script type="module">\s*document\.addEventListener\("DOMContentLoaded", async \(\) => \{\s*'
                      r'const diagrams = document\.querySelectorAll\("\.jp-Mermaid.*?</script>', re.S)


_HEADING = re.compile(r"<h([1-6])\b[^>]*\bid=\"([^\"]+)\"")


def on_page_context(context, page, config, nav, **kwargs):
    """Point the table of contents at the headings' real ids: mkdocs-jupyter slugs a heading with inline code
    (`## Command line: `toolforge catalog``) differently in the TOC and in the page. Both list the same markdown
    headings in the same order, so each TOC entry takes the id of the next heading of its level."""
    heads, i = [(int(l), h) for l, h in _HEADING.findall(page.content or "")], 0
    ids = {h for _, h in heads}
    def walk(items):
        nonlocal i
        for item in items:
            j = next((k for k in range(i, len(heads)) if heads[k][0] == item.level), None)
            if j is not None:
                if item.id not in ids: item.id = heads[j][1]
                i = j + 1
            walk(item.children)
    if page.toc: walk(page.toc)
    return context


def on_post_page(output, page, config, **kwargs):
    "Drop nbconvert's CDN scripts and point nbdev's doc links (doc_host/NAME.html#x) at the local pages."
    output = _MERMAID.sub("", _MATHJAX.sub("", output))
    prefix, pages = config["extra"].get("nbdev_doc_prefix"), config["extra"].get("nbdev_pages", {})
    if prefix:
        def local(m):
            name, frag = m[1], m[2] or ""
            return f'href="{pages[name]}{frag}" data-nbdev-link' if name in pages else m[0]
        output = re.sub(r'href="' + re.escape(prefix) + r'/([^"#]*)(#[^"]*)?"', local, output)
    # links between notebooks written as NAME.ipynb
    return re.sub(r'href="((?![a-z]+:)[^"#]*?)\.ipynb(#[^"]*)?"', r'href="\1.html\2"', output)


_ID = re.compile(r"""\sid=["']([^"']+)["']""")
_DOCLINK = re.compile(r'<a href="([^"#]+)#([^"]+)" data-nbdev-link>(.*?)</a>', re.S)


def on_post_build(config, **kwargs):
    """nbdev links every backticked name it knows, private ones too (`_fill`); where the target page has no
    such anchor (no show_doc for it), keep the name as code rather than leave a link to a missing anchor."""
    site = Path(config["site_dir"])
    pages = {p.relative_to(site).as_posix(): p.read_text(encoding="utf-8") for p in site.rglob("*.html")}
    ids = {name: set(_ID.findall(html)) for name, html in pages.items()}
    dropped = []
    def keep(m):
        if m[1] in ids and m[2] not in ids[m[1]]: dropped.append(f"{m[1]}#{m[2]}"); return m[3]
        return m[0]
    for name, html in pages.items():
        new = _DOCLINK.sub(keep, html)
        if new != html: (site/name).write_text(new, encoding="utf-8")
    if dropped: print(f"docs: {len(dropped)} nbdev links to names without show_doc kept as plain code: {', '.join(sorted(set(dropped)))}")


def main(argv):
    import os
    os.chdir(ROOT)
    if "--no-proc" not in argv: proc()
    conf = stage()
    print(f"docs: {len(source_notebooks())} notebooks staged in {conf.parent.relative_to(ROOT)}; building {SITE.relative_to(ROOT)}/")
    return subprocess.call([sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "-f", str(conf)])


if __name__ == "__main__": sys.exit(main(sys.argv[1:]))
