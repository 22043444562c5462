"""Measure rendered reveal.js decks in headless Chromium: which slides overflow the slide frame.

Each deck is copied next to itself with a measuring script added; Chromium opens it from ``file://``
(``--dump-dom``, no network, no extra Python package), the script walks every slide (``Reveal.slide(h, v)``, once
MathJax has typeset it), takes the union of the bounding boxes of its elements and text, each cut by its clipping
ancestors, in slide pixels, and writes the result into the DOM as JSON, which Python reads back from the dumped
page. A slide fits when that box lies inside the deck's frame (its configured width x height), no box hides
content (a cell that ``tools/slides.py`` marked to scroll may, vertically: it is counted), no image is broken and
the slide is not blank.

    python -m tools.slide_fit build/slides          # every deck under the folder; exit 1 if any overflows
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
TOLERANCE_PX = 2  # sub-pixel rounding and anti-aliasing
SETTLE_MS = 300  # after showing a slide, (virtual) time for MathJax to start re-rendering it

# Runs in the page: waits for reveal.js and MathJax, then measures every slide and reports into the DOM.
MEASURE_JS = r"""
<style>
.reveal .slides section, .reveal .slides section * { transition: none !important; animation: none !important; }
.reveal .slides section .fragment { opacity: 1 !important; visibility: inherit !important; transform: none !important; }
</style>
<script>
(function () {
  var done = false, errors = [];
  function report(obj) {
    if (done) return;
    done = true;
    obj.errors = errors;
    var pre = document.createElement("pre");
    pre.id = "llmfs-fit-result";
    pre.style.display = "none";
    pre.textContent = "LLMFS-FIT-" + "BEGIN" + JSON.stringify(obj) + "LLMFS-FIT-" + "END";
    document.body.appendChild(pre);
  }
  window.addEventListener("error", function (e) { errors.push(String(e.message).slice(0, 200)); });
  function clips(style) {
    return ["hidden", "auto", "scroll", "clip"].indexOf(style.overflowX) >= 0 ||
           ["hidden", "auto", "scroll", "clip"].indexOf(style.overflowY) >= 0;
  }
  function describe(el) {
    var s = el.tagName.toLowerCase();
    if (el.className && typeof el.className === "string") s += "." + el.className.trim().split(/\s+/).slice(0, 2).join(".");
    return s;
  }
  function measureSlide(section, frame, scale) {
    // The union of what can be seen: element boxes and text, each cut by the boxes of its clipping ancestors;
    // what a clipping ancestor hides (behind a scroll bar or cut off) is reported separately.
    var box = {left: Infinity, top: Infinity, right: -Infinity, bottom: -Infinity};
    var clipped = [];
    function add(r, clip) {
      if (r.width <= 0 && r.height <= 0) return;
      var left = r.left, top = r.top, right = r.right, bottom = r.bottom;
      if (clip) {
        clip.chain.forEach(function (c) {  // what each clipping ancestor hides of this box
          var hx = Math.max(c.own.left - left, right - c.own.right, 0) / scale;
          var hy = Math.max(c.own.top - top, bottom - c.own.bottom, 0) / scale;
          c.entry.hidden_x = Math.max(c.entry.hidden_x, Math.round(hx));
          c.entry.hidden_y = Math.max(c.entry.hidden_y, Math.round(hy));
        });
        left = Math.max(left, clip.rect.left); top = Math.max(top, clip.rect.top);
        right = Math.min(right, clip.rect.right); bottom = Math.min(bottom, clip.rect.bottom);
        if (right <= left || bottom <= top) return;
      }
      box.left = Math.min(box.left, left); box.top = Math.min(box.top, top);
      box.right = Math.max(box.right, right); box.bottom = Math.max(box.bottom, bottom);
    }
    function clipOf(el, style, clip, name) {
      if (!clips(style)) return clip;
      var r = el.getBoundingClientRect();
      var own = {left: r.left, top: r.top, right: r.right, bottom: r.bottom};
      var rect = {left: own.left, top: own.top, right: own.right, bottom: own.bottom};
      if (clip) {
        rect.left = Math.max(rect.left, clip.rect.left); rect.top = Math.max(rect.top, clip.rect.top);
        rect.right = Math.min(rect.right, clip.rect.right); rect.bottom = Math.min(rect.bottom, clip.rect.bottom);
      }
      var entry = {element: name || describe(el), hidden_x: 0, hidden_y: 0,
                   scroll: el.classList.contains("celltag_llmfs-scroll")};
      clipped.push(entry);
      return {rect: rect, chain: (clip ? clip.chain : []).concat([{own: own, entry: entry}])};
    }
    function walk(node, clip) {
      for (var child = node.firstChild; child; child = child.nextSibling) {
        if (child.nodeType === 3) {
          if (!child.textContent.trim()) continue;
          var range = document.createRange();
          range.selectNodeContents(child);
          add(range.getBoundingClientRect(), clip);
        } else if (child.nodeType === 1) {
          var tag = child.tagName.toLowerCase();
          if (tag === "script" || tag === "style" || tag === "aside") continue;
          var style = getComputedStyle(child);
          if (style.display === "none") continue;
          if (/MJX_Assistive|MathJax_Preview/.test(child.className)) continue;
          if (node.tagName === "DETAILS" && !node.open && tag !== "summary") continue;  // folded away
          if (style.visibility !== "hidden") add(child.getBoundingClientRect(), clip);
          walk(child, clipOf(child, style, clip));
        }
      }
    }
    walk(section, clipOf(section, getComputedStyle(section), null, "section"));
    clipped = clipped.filter(function (c) { return c.hidden_x > 2 || c.hidden_y > 2; });
    if (box.right < box.left) return {empty: true, clipped: clipped, left: 0, top: 0, right: 0, bottom: 0};
    return {
      empty: false,
      clipped: clipped,
      left: Math.round((frame.left - box.left) / scale),
      top: Math.round((frame.top - box.top) / scale),
      right: Math.round((box.right - frame.right) / scale),
      bottom: Math.round((box.bottom - frame.bottom) / scale)
    };
  }
  function afterMath(fn, section) {  // once MathJax has typeset the page (or re-typeset this slide), measure
    var run = function () {
      setTimeout(function () {
        try { fn(); } catch (e) { report({error: "measuring failed: " + e}); }
      }, 0);
    };
    if (!(window.MathJax && MathJax.Hub && MathJax.Hub.Register)) { run(); return; }
    MathJax.Hub.Register.StartupHook("End", function () {
      if (!section) { MathJax.Hub.Queue(run); return; }
      // showing a slide makes the deck re-render its formulas (for their line breaks): let that start, then wait
      setTimeout(function () {
        MathJax.Hub.Queue(["Typeset", MathJax.Hub, section]);
        MathJax.Hub.Queue(run);
      }, SETTLE_MS);
    });
  }
  function measureAll(Reveal) {
    Reveal.configure({margin: 0, transition: "none", backgroundTransition: "none"});
    var slidesEl = document.querySelector(".reveal .slides");
    var cfg = Reveal.getConfig();
    var out = {width: cfg.width, height: cfg.height, slides: []};
    var todo = [];
    var stacks = document.querySelectorAll(".reveal .slides > section");
    for (var h = 0; h < stacks.length; h++) {
      var inner = stacks[h].querySelectorAll(":scope > section");
      if (!inner.length) todo.push([h, 0, stacks[h]]);
      for (var v = 0; v < inner.length; v++) todo.push([h, v, inner[v]]);
    }
    var i = 0;
    function next() {
      if (i >= todo.length) { report(out); return; }
      var h = todo[i][0], v = todo[i][1], section = todo[i][2];
      i += 1;
      Reveal.slide(h, v);
      afterMath(function () {
        Reveal.layout();
        var scale = Reveal.getScale();
        var fr = slidesEl.getBoundingClientRect();
        var frame = {left: fr.left, top: fr.top, right: fr.left + cfg.width * scale, bottom: fr.top + cfg.height * scale};
        var m = measureSlide(section, frame, scale);
        m.h = h; m.v = v;
        m.scrolls = m.clipped.some(function (c) { return c.scroll; });
        var title = section.querySelector("h1, h2, h3");
        m.title = title ? title.textContent.replace(/¶/g, "").trim().slice(0, 60) : "";
        m.cells = Array.prototype.map.call(section.querySelectorAll(".jp-Cell"), function (c) {
          var r = c.getBoundingClientRect();
          return {id: (c.id || "").replace("cell-id=", ""), height: Math.round(r.height / scale)};
        });
        m.broken_images = Array.prototype.filter.call(section.querySelectorAll("img"), function (img) {
          return img.complete && img.naturalWidth === 0;
        }).map(function (img) { return (img.getAttribute("src") || "").slice(0, 80); });
        m.math_pending = Array.prototype.filter.call(section.querySelectorAll('script[type^="math/tex"]'), function (e) {
          return !(e.id && document.getElementById(e.id + "-Frame"));  // MathJax's output sits beside the script
        }).length;
        out.slides.push(m);
        next();
      }, section);
    }
    next();
  }
  function start(Reveal) {
    var go = function () { afterMath(function () { measureAll(Reveal); }); };
    if (Reveal.isReady()) go(); else Reveal.addEventListener("ready", go);
  }
  require([REVEAL_URL], start, function (err) { report({error: "reveal.js did not load: " + err}); });
})();
</script>
"""

REVEAL_REQUIRE = re.compile(r'"([^"\s]*/dist/reveal\.js)"')
RESULT = re.compile(r"LLMFS-FIT-BEGIN(.*?)LLMFS-FIT-END", re.S)


def find_browser() -> str | None:
    """A Chromium-family browser on PATH (or named by $LLMFS_CHROMIUM), else None."""
    named = os.environ.get("LLMFS_CHROMIUM")
    if named:
        return shutil.which(named)
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Slide:
    deck: str
    h: int
    v: int
    title: str
    right: int  # px of content past the right edge of the frame (negative: room to spare)
    bottom: int
    left: int
    top: int
    scrolls: bool = False  # holds a cell marked to scroll (the last resort): its box fits, its content scrolls
    clipped: list = field(default_factory=list)  # elements whose content is hidden behind a scroll bar
    broken_images: list = field(default_factory=list)
    cells: list = field(default_factory=list)  # {id, height} of each notebook cell on the slide
    math_pending: int = 0  # formulas MathJax had not typeset when the slide was measured
    empty: bool = False  # nothing visible on it: a blank slide

    @property
    def overflow_x(self) -> int:
        return max(self.right, self.left, 0)

    @property
    def overflow_y(self) -> int:
        return max(self.bottom, self.top, 0)

    @property
    def overflows(self) -> bool:
        """Content outside the frame, or clipped inside an element that is not a slide marked to scroll."""
        hidden = any(not self._scrolled(c) for c in self.clipped)
        return self.overflow_x > TOLERANCE_PX or self.overflow_y > TOLERANCE_PX or hidden

    @property
    def fits(self) -> bool:
        """Everything on the slide can be seen: no overflow, no broken image, not blank."""
        return not self.overflows and not self.broken_images and not self.empty

    def _scrolled(self, entry: dict) -> bool:
        """Hidden content that a reader can scroll to: a cell marked to scroll (vertically)."""
        return entry.get("scroll", False) and entry["hidden_x"] <= TOLERANCE_PX

    def describe(self) -> str:
        parts = []
        if self.overflow_x > TOLERANCE_PX:
            parts.append(f"{self.overflow_x} px too wide")
        if self.overflow_y > TOLERANCE_PX:
            parts.append(f"{self.overflow_y} px too tall")
        parts += [f"{c['element']} hides {c['hidden_x']}x{c['hidden_y']} px" for c in self.clipped if not self._scrolled(c)]
        if self.broken_images:
            parts.append(f"broken images {self.broken_images}")
        if self.empty:
            parts.append("blank slide")
        return f"{self.deck} slide {self.h}/{self.v} ({self.title!r}): " + ", ".join(parts)


def measure(deck: Path, browser: str | None = None, window=(1280, 720), timeout: float = 120) -> tuple[dict, list[Slide]]:
    """Open ``deck`` in headless Chromium and measure each slide; returns (reveal size, slides)."""
    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError("no Chromium-family browser found on PATH")
    deck = Path(deck).resolve()
    html = deck.read_text(encoding="utf-8")
    found = REVEAL_REQUIRE.search(html)
    if not found:
        raise ValueError(f"{deck}: no reveal.js script found")
    script = MEASURE_JS.replace("REVEAL_URL", json.dumps(found.group(1))).replace("SETTLE_MS", str(SETTLE_MS))
    probe = deck.with_name(deck.name.replace(".slides.html", "") + ".fit-probe.html")
    cut = html.rfind("</html>")
    probe.write_text(html[:cut] + script + html[cut:] if cut >= 0 else html + script, encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory(prefix="llmfs-chromium-") as profile:
            cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--disable-component-update", "--disable-default-apps", "--disable-extensions", "--disable-sync",
                   "--no-first-run", "--no-default-browser-check", "--hide-scrollbars", "--mute-audio",
                   "--allow-file-access-from-files", f"--user-data-dir={profile}",
                   "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing reaches the network, even by mistake
                   f"--window-size={window[0]},{window[1]}", "--virtual-time-budget=60000",
                   "--dump-dom", probe.as_uri()]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally:
        probe.unlink(missing_ok=True)
    got = RESULT.search(proc.stdout)
    if not got:
        raise RuntimeError(f"{deck}: the browser reported no measurement (exit {proc.returncode}): {proc.stderr[-2000:]}")
    data = json.loads(got.group(1))
    if "error" in data:
        raise RuntimeError(f"{deck}: {data['error']}")
    name = deck.name.replace(".slides.html", "")
    slides = [Slide(deck=name, h=s["h"], v=s["v"], title=s["title"], right=s["right"], bottom=s["bottom"], left=s["left"],
                    top=s["top"], scrolls=s["scrolls"], clipped=s["clipped"], broken_images=s["broken_images"],
                    cells=s["cells"], math_pending=s["math_pending"], empty=s["empty"]) for s in data["slides"]]
    return {"width": data["width"], "height": data["height"], "errors": data.get("errors", [])}, slides


def measure_all(decks: list[Path], browser: str | None = None, workers: int = 4) -> dict[Path, tuple[dict, list[Slide]]]:
    """``measure`` each deck, ``workers`` browsers at a time (a browser spends most of its ~2 s start idle)."""
    from concurrent.futures import ThreadPoolExecutor

    browser = browser or find_browser()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(lambda deck: measure(deck, browser), decks))
    return dict(zip(decks, results))


def summary(measured: dict[Path, tuple[dict, list[Slide]]]) -> tuple[list[str], list[Slide]]:
    """Report lines (a line per deck, then one per slide that does not fit) and the slides that do not fit."""
    lines, bad = [], []
    for deck, (size, slides) in measured.items():
        over = [s for s in slides if not s.fits]
        bad += over
        lines.append(f"{deck}: {len(slides)} slides at {size['width']}x{size['height']}, {len(over)} do not fit, "
                     f"{sum(s.scrolls for s in slides)} scroll")
        lines += [f"    script error in the page: {e}" for e in size.get("errors", [])]
        lines += ["    " + s.describe() for s in over]
    n = sum(len(slides) for _, slides in measured.values())
    n_scroll = sum(s.scrolls for _, slides in measured.values() for s in slides)
    lines.append(f"{len(measured)} decks, {n} slides: {len(bad)} do not fit, {n_scroll} hold a cell that scrolls")
    return lines, bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.slide_fit", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="decks (*.slides.html) or folders holding them")
    parser.add_argument("--json", type=Path, help="also write every slide's measurement here")
    parser.add_argument("--workers", type=int, default=4, help="browsers at a time")
    args = parser.parse_args(argv)
    decks = [q for p in args.paths for q in (sorted(p.rglob("*.slides.html")) if p.is_dir() else [p])]
    if find_browser() is None:
        print("no Chromium-family browser found (apt-get install chromium, or set LLMFS_CHROMIUM)", file=sys.stderr)
        return 2
    measured = measure_all(decks, workers=args.workers)
    lines, bad = summary(measured)
    print("\n".join(lines))
    if args.json:
        everything = [{**s.__dict__, "size": size, "path": str(deck)}
                      for deck, (size, slides) in measured.items() for s in slides]
        args.json.write_text(json.dumps(everything, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
