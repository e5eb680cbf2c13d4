"""Document formats: how long reading each accepted format and refusing each hostile file
takes, and how much it grows a fresh process's peak memory (the file is read first, so its
own bytes are not counted). The files are those of the tests (tests/documents/files.py).

    .venv/bin/python -m bench.bench_formats
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.documents import files

CASES: list[tuple[str, str, Callable[[], bytes]]] = [
    ("docx report", "report.docx", files.docx_report),
    ("pptx deck", "deck.pptx", files.pptx_deck),
    ("xlsx workbook", "book.xlsx", files.xlsx_workbook),
    ("xlsx 99,000 empty styled rows", "rows.xlsx", lambda: files.xlsx_empty_styled_rows(99_000)),
    ("epub", "book.epub", files.epub_book),
    ("eml + csv attachment", "m.eml", lambda: files.eml_message(("t.csv", files.csv_table()))),
    ("zip bomb 200 MiB", "bomb.docx", lambda: files.zip_bomb(megabytes=200)),
    ("zip bomb 40 MiB (ratio)", "ratio.xlsx", lambda: files.zip_bomb("xl/workbook.xml", 40)),
    ("20,000 zip members", "m.docx", lambda: files.many_members(20_000)),
    ("entity bomb", "laughs.docx", files.docx_entity_bomb),
    ("docx 160,000 paragraphs", "long.docx", lambda: files.docx_paragraphs(160_000)),
    ("docx 1,500,000 paragraphs", "long.docx", lambda: files.docx_paragraphs(1_500_000)),
    ("1,000,000 empty styled rows", "rows.xlsx", files.xlsx_empty_styled_rows),
    (
        "1,000,000 rows, no dimension",
        "rows.xlsx",
        lambda: files.xlsx_empty_styled_rows(dimension=False),
    ),
    ("100,000-column CSV", "wide.csv", files.wide_csv),
    ("MIME nested 2,000 deep", "deep.eml", files.nested_mime),
]

_CHILD = """
import json, resource, sys, time
from app.core.errors import AppError
from app.documents.formats import ExtractionLimits, extract_upload
data = open(sys.argv[1], "rb").read()
extract_upload(b"Warm-up.", "warm.txt", ExtractionLimits(max_chars=100))
import docx, openpyxl, pptx  # their import time is not the file's
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
try:
    text = extract_upload(data, sys.argv[2], ExtractionLimits(max_chars=5_000_000))[1]
    outcome = f"{len(text)} chars"
except AppError as exc:
    outcome = str(exc.status_code)
seconds = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "seconds": seconds, "growth_mb": (after - before) / 1024}))
"""


def main() -> None:
    print(f"{'file':32} {'bytes':>10} {'outcome':>12} {'seconds':>8} {'peak RSS +MB':>13}")
    with tempfile.TemporaryDirectory() as folder:
        for label, name, make in CASES:
            path = Path(folder) / name
            data = make()
            path.write_bytes(data)
            done = subprocess.run(  # noqa: S603 - our own interpreter and code
                [sys.executable, "-c", _CHILD, str(path), name],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(done.stdout)
            print(
                f"{label:32} {len(data):>10} {result['outcome']:>12} "
                f"{result['seconds']:>8.3f} {result['growth_mb']:>13.1f}"
            )


if __name__ == "__main__":
    main()
