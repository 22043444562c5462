"""Render course notebooks as reveal.js slides that work offline (``make slides``).

nbconvert's slides load reveal.js, require.js, jQuery and MathJax from CDNs; here every script comes
from local copies of pinned npm packages (``make setup`` puts them in ``build/vendor``), referenced by
relative URLs, so the slides open from ``file://`` with no network.

    python -m tools.slides 01CB-basics --out build/slides --vendor build/vendor
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

MERMAID_STUB = "export default { initialize() {} };\n"  # the course draws no mermaid diagrams


def _vendor_urls(out_dir: Path, vendor: Path) -> dict[str, str]:
    """Exporter settings pointing at the local copies, relative to the folder of the HTML file."""
    rel = Path(os.path.relpath(vendor.resolve(), out_dir.resolve())).as_posix()
    stub = vendor / "mermaid-stub.mjs"
    if not stub.exists():
        stub.write_text(MERMAID_STUB)
    return {
        "reveal_url_prefix": f"{rel}/reveal.js",
        "require_js_url": f"{rel}/requirejs/require.js",
        "jquery_url": f"{rel}/jquery/dist/jquery.min.js",
        "mathjax_url": f"{rel}/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe",
        "mermaid_js_url": f"{rel}/mermaid-stub.mjs",
    }


def render(nb_path: Path, out_dir: Path, vendor: Path, execute: bool = True) -> Path:
    """Execute ``nb_path`` (in FAST mode if ``LLMFS_FAST`` is set) and write ``out_dir/<name>.slides.html``."""
    import nbformat
    from nbconvert import SlidesExporter
    from nbconvert.preprocessors import ExecutePreprocessor

    nb_path, out_dir, vendor = Path(nb_path), Path(out_dir), Path(vendor)
    missing = [p for p in ("reveal.js/dist/reveal.js", "requirejs/require.js", "jquery/dist/jquery.min.js",
                           "mathjax/MathJax.js") if not (vendor / p).is_file()]
    if missing:
        raise FileNotFoundError(f"offline slide scripts missing in {vendor}: {missing}. Run `make setup`.")
    out_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(nb_path, as_version=4)
    if execute:
        ExecutePreprocessor(timeout=900, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(nb_path.parent)}})
    exporter = SlidesExporter(**_vendor_urls(out_dir, vendor))
    html, _ = exporter.from_notebook_node(nb)
    out = out_dir / f"{nb_path.stem}.slides.html"
    out.write_text(html, encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.slides", description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="notebooks or series folders")
    parser.add_argument("--out", type=Path, default=Path("build/slides"))
    parser.add_argument("--vendor", type=Path, default=Path("build/vendor"))
    parser.add_argument("--no-execute", action="store_true")
    args = parser.parse_args(argv)
    nbs = [q for p in args.paths for q in (sorted(p.glob("*.ipynb")) if p.is_dir() else [p])]
    for nb in nbs:
        out = render(nb, args.out / nb.parent.name, args.vendor, execute=not args.no_execute)
        print(f"slides: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
