"""HTML to PDF with headless Chromium's own print-to-PDF (`chromium --headless
--print-to-pdf`), the engine the browser tests already use: no PDF library to keep,
and the PDF is what a browser prints of the same page.

The page must be self-contained (inline CSS and SVG): it is written to a private
temporary directory with its own Chromium profile and printed from there, so that
concurrent prints do not share a profile. Where no Chromium is configured or found,
`html_to_pdf` raises PdfUnavailable with a message that says so; callers answer 503
and keep serving the HTML.
"""

import hashlib
import shutil
import subprocess
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

from django.conf import settings

PRINT_TIMEOUT = 60  # seconds: a page of a few hundred KB prints in about 2 s
# The last prints of this process, by the SHA-256 of their HTML: printing takes a
# Chromium process and seconds, and the same page is often asked again (a pack
# downloaded twice); the same HTML then gives the same PDF bytes.
KEPT = 32
_printed = OrderedDict()
_lock = threading.Lock()  # gunicorn's threads share it


class PdfUnavailable(Exception):
    """No PDF engine here, or it failed: the message says which and what to do."""


def engine():
    """The Chromium executable to print with, or None (CONTROLPLANE_PDF_CHROMIUM: a
    path or a name on PATH; "off" turns PDFs off)."""
    name = settings.CONTROLPLANE_PDF_CHROMIUM
    return shutil.which(name) if name else None


def html_to_pdf(html):
    """The PDF (bytes) Chromium prints of `html` (bytes, UTF-8), on A4 without the
    browser's own header and footer."""
    chromium = engine()
    if chromium is None:
        configured = settings.CONTROLPLANE_PDF_CHROMIUM
        why = f"Chromium ({configured!r}) was not found" if configured else "CONTROLPLANE_PDF_CHROMIUM is off"
        raise PdfUnavailable(
            f"No PDF engine on this server: {why}. Install Chromium or set CONTROLPLANE_PDF_CHROMIUM "
            "to its path; the HTML version works."
        )
    key = hashlib.sha256(html).hexdigest()
    with _lock:
        if key in _printed:
            _printed.move_to_end(key)
            return _printed[key]
    content = _print(chromium, html)
    with _lock:
        _printed[key] = content
        while len(_printed) > KEPT:
            _printed.popitem(last=False)
    return content


def _print(chromium, html):
    with tempfile.TemporaryDirectory(prefix="controlplane-pdf-") as tmp:
        page, out = Path(tmp) / "page.html", Path(tmp) / "page.pdf"
        page.write_bytes(html)
        command = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions",
            "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={Path(tmp) / 'profile'}",
            "--no-pdf-header-footer", f"--print-to-pdf={out}", page.as_uri(),
        ]
        try:
            done = subprocess.run(command, capture_output=True, timeout=PRINT_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PdfUnavailable(f"Chromium could not print the PDF: {exc}") from exc
        if done.returncode != 0 or not out.exists() or out.stat().st_size == 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise PdfUnavailable(
                f"Chromium could not print the PDF (exit status {done.returncode}): {tail[0][:300]}"
            )
        return out.read_bytes()
