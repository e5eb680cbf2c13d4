"""Hostile files: zip bombs, entity bombs, sheets of a million empty styled rows, CSVs of
100,000 columns, MIME trees nested 2,000 deep, corrupt files. Each is refused with a clear
413 or 422 on the upload route and through `chatbot ingest`, nothing is stored, and reading
it grows a fresh process's peak memory by less than 100 MB."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from sqlalchemy import func, select

from app.api.state import State
from app.cli import main
from app.documents.formats import ExtractionLimits, extract_upload
from app.documents.models import Document
from app.rag.backends.local import VectorEntry
from tests.conftest import new_user
from tests.documents import files
from tests.test_cli import cli_env, database_file_url, documents, migrated_url  # noqa: F401

HOSTILE: dict[str, tuple[str, Callable[[], bytes], int]] = {
    "zip bomb (total size)": ("bomb.docx", lambda: files.zip_bomb(megabytes=200), 413),
    "zip bomb (ratio)": ("ratio.xlsx", lambda: files.zip_bomb("xl/workbook.xml", 40), 413),
    "too many members": ("members.docx", lambda: files.many_members(20_000), 413),
    "entity bomb": ("laughs.docx", files.docx_entity_bomb, 422),
    "1,500,000 paragraphs": ("long.docx", lambda: files.docx_paragraphs(1_500_000), 413),
    "million empty styled rows": ("rows.xlsx", files.xlsx_empty_styled_rows, 413),
    "million rows, no declared size": (
        "rows.xlsx",
        lambda: files.xlsx_empty_styled_rows(dimension=False),
        413,
    ),
    "100,000 columns": ("wide.csv", files.wide_csv, 413),
    "nested MIME": ("deep.eml", files.nested_mime, 413),
    "truncated docx": ("cut.docx", lambda: files.docx_report()[:2000], 422),
    "corrupt member": (
        "broken.pptx",
        lambda: files.replace_member(files.pptx_deck(), "ppt/presentation.xml", b"<p:pres"),
        422,
    ),
}
CASES = pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))


async def _stored(state: State) -> tuple[int, int]:
    async with state["sessions"]() as session:
        documents = (await session.execute(select(func.count(Document.id)))).scalar_one()
        vectors = (await session.execute(select(func.count(VectorEntry.seq)))).scalar_one()
    return int(documents), int(vectors)


@CASES
async def test_upload_hostile_file_is_refused_and_nothing_stored(
    client: httpx.AsyncClient, state: State, case: str
) -> None:
    filename, make, status = HOSTILE[case]
    headers = await new_user(client)

    response = await client.post(
        "/api/documents/", files={"file": (filename, make(), "text/plain")}, headers=headers
    )

    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == ("payload_too_large" if status == 413 else "invalid_input")
    assert body["detail"]
    assert await _stored(state) == (0, 0)


def test_extract_zip_bomb_never_inflates_a_member(monkeypatch: pytest.MonkeyPatch) -> None:
    bombs = (files.zip_bomb(megabytes=200), files.zip_bomb(megabytes=40))
    opened: list[str] = []
    original = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: Any, *args: Any, **kwargs: Any) -> IO[bytes]:
        opened.append(name if isinstance(name, str) else name.filename)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    for data in bombs:
        with pytest.raises(Exception, match="MAX_ZIP_"):
            extract_upload(data, "bomb.docx", ExtractionLimits(max_chars=5_000_000))
    assert opened == []


@pytest.mark.parametrize(
    ("member", "archive"),
    [
        ("xl/worksheets/sheet2.xml", files.xlsx_workbook),
        ("OEBPS/ch1.xhtml", files.epub_book),
        ("ppt/slides/slide1.xml", files.pptx_deck),
    ],
)
def test_extract_entity_declaration_in_any_member_is_422(
    member: str, archive: Callable[[], bytes]
) -> None:
    from app.core.errors import InvalidInput

    data = files.replace_member(archive(), member, files.LAUGHS + b"<root>&lol9;</root>")
    with pytest.raises(InvalidInput, match="entit"):
        extract_upload(data, "file.bin", ExtractionLimits(max_chars=5_000_000))


def test_extract_rows_counted_in_namespace_prefixed_sheet_xml_is_413() -> None:
    from app.core.errors import PayloadTooLarge

    rows = b"".join(b'<x:row r="%d"><x:c r="A%d" s="1"/></x:row>' % (n, n) for n in range(1, 301))
    sheet = (
        b'<?xml version="1.0"?><x:worksheet '
        b'xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b"<x:sheetData>" + rows + b"</x:sheetData></x:worksheet>"
    )
    data = files.replace_member(files.xlsx_workbook(), "xl/worksheets/sheet1.xml", sheet)
    limits = ExtractionLimits(max_chars=5_000_000, max_table_rows=200)
    # Counted in the XML before openpyxl reads it (not by the row-by-row reader after).
    with pytest.raises(PayloadTooLarge, match=r"^The workbook has more than 200 rows"):
        extract_upload(data, "prefixed.xlsx", limits)


def test_extract_text_over_character_ceiling_is_413_for_office_files() -> None:
    from app.core.errors import PayloadTooLarge

    with pytest.raises(PayloadTooLarge, match="MAX_DOCUMENT_CHARS"):
        extract_upload(files.docx_report(), "report.docx", ExtractionLimits(max_chars=100))


_MEASURE = """
import json, resource, sys
from app.core.errors import AppError
from app.documents.formats import ExtractionLimits, extract_upload
data = open(sys.argv[1], "rb").read()
extract_upload(b"Warm-up.", "warm.txt", ExtractionLimits(max_chars=100))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    extract_upload(data, sys.argv[2], ExtractionLimits(max_chars=5_000_000))
    status = 200
except AppError as exc:
    status = exc.status_code
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"status": status, "growth_kib": after - before}))
"""


@CASES
def test_extract_hostile_file_grows_peak_memory_under_100_mb(tmp_path: Path, case: str) -> None:
    filename, make, status = HOSTILE[case]
    path = tmp_path / filename
    path.write_bytes(make())

    # A fresh process: its peak RSS is this file's alone.
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", _MEASURE, str(path), filename],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )

    measured = json.loads(result.stdout)
    assert measured["status"] == status
    assert measured["growth_kib"] < 100 * 1024


@pytest.mark.model
def test_ingest_folder_refuses_hostile_files_and_reports_skipped(
    migrated_url: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "kb"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "config").write_text("[core]\n")
    (folder / "report.docx").write_bytes(files.docx_report())
    (folder / "deck.pptx").write_bytes(files.pptx_deck())
    (folder / "bomb.docx").write_bytes(files.zip_bomb(megabytes=200))
    (folder / "rows.xlsx").write_bytes(files.xlsx_empty_styled_rows(dimension=False))
    (folder / "wide.csv").write_bytes(files.wide_csv())
    (folder / "deep.eml").write_bytes(files.nested_mime())
    (folder / "laughs.docx").write_bytes(files.docx_entity_bomb())
    (folder / "legacy.doc").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
    capsys.readouterr()

    code = main(["ingest", str(folder)])

    out, err = capsys.readouterr()
    assert code == 1
    assert out.strip().endswith("added 2, unchanged 0, failed 5")
    report = (out + err).splitlines()
    for name, setting in [
        ("bomb.docx", "MAX_ZIP_UNCOMPRESSED_BYTES"),
        ("rows.xlsx", "MAX_TABLE_ROWS"),
        ("wide.csv", "MAX_TABLE_COLUMNS"),
        ("deep.eml", "MAX_EMAIL_PARTS"),
        ("laughs.docx", "entities"),
    ]:
        assert any(name in line and setting in line for line in report), (name, report)
    assert any(
        line.startswith("skipped") and "legacy.doc" in line and "'.doc'" in line for line in report
    ), report
    assert not any(".git" in line for line in report)
    assert sorted(d.filename or "" for d in documents(migrated_url)) == [
        "deck.pptx",
        "report.docx",
    ]
