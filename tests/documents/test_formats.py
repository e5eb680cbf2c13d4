"""Every accepted format, read with its structure: unit checks of the text each reader
writes, and one question per format through the API whose answer sits in one table cell,
slide, sheet row or mail body, answered with a source that names the section."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.api.state import State
from app.core.errors import InvalidInput, UnsupportedMediaType
from app.documents.chunking import chunk_text, markdown_headings
from app.documents.formats import (
    ACCEPTED,
    CSV,
    DOCX,
    EML,
    EPUB,
    PPTX,
    XLSX,
    ExtractionLimits,
    detect,
    extract_upload,
)
from app.documents.formats.numfmt import format_number
from app.rag.text import split_sentences
from tests.conftest import new_user
from tests.documents import files

LIMITS = ExtractionLimits(max_chars=1_000_000)


def _text(data: bytes, filename: str) -> str:
    return extract_upload(data, filename, LIMITS)[1]


# --- what each reader writes ------------------------------------------------------------------


def test_extract_docx_headings_become_sections_and_rows_carry_headers() -> None:
    text = _text(files.docx_report(), "report.docx")
    assert "# Quarterly report" in text.splitlines()
    assert "## Regional revenue" in text.splitlines()
    assert "Region: EMEA; Q3 revenue: 4.1 M" in text.splitlines()
    assert "- Badge readers on every floor" in text.splitlines()


def test_extract_pptx_one_section_per_slide_with_notes() -> None:
    text = _text(files.pptx_deck(), "deck.pptx")
    headings = [line for line in text.splitlines() if line.startswith("# ")]
    assert headings == ["# Slide 1: Kickoff", "# Slide 2: Launch plan", "# Slide 3: Budget"]
    launch = text.split("# Slide 2: Launch plan")[1].split("# Slide 3")[0]
    assert "Zephyr rollout starts in Lisbon" in launch
    assert "Notes: Mention the pilot." in launch


def test_extract_xlsx_sheets_are_sections_with_formatted_values() -> None:
    text = _text(files.xlsx_workbook(), "book.xlsx")
    lines = text.splitlines()
    assert "# Sales" in lines
    assert "# Staff" in lines
    # The number as the sheet shows it, the empty row and the empty column left out.
    assert "Region: EMEA; Revenue: 4,100,000.50; Share: 41.2%" in lines
    assert "Name: Grete Holm; Office: Tallinn; Extension: 4471" in lines
    assert "4100000.5" not in text
    assert "Column" not in text


def test_extract_csv_rows_carry_headers_and_empty_rows_are_skipped() -> None:
    text = _text(files.csv_table(), "inventory.csv")
    assert text.splitlines()[0] == "# inventory"
    assert "Product: Quill pen; Warehouse: Gdansk; Units: 85" in text
    assert ": ;" not in text
    assert len([line for line in text.splitlines() if line.startswith("Product:")]) == 3


def test_extract_epub_chapters_in_spine_order() -> None:
    text = _text(files.epub_book(), "book.epub")
    assert text.index("# Arrival") < text.index("# The lighthouse")
    assert "Ottilie Brandt" in text.split("# The lighthouse")[1]


def test_extract_eml_subject_headers_plain_body_and_attachment() -> None:
    data = files.eml_message(("inventory.csv", files.csv_table()))
    text = _text(data, "move.eml")
    lines = text.splitlines()
    assert lines[0] == "# Office move on Monday"
    assert "From: Facilities <facilities@example.com>" in lines
    assert "To: all-staff@example.com" in lines
    assert any(line.startswith("Date: Mon, 30 Nov 2026") for line in lines)
    assert "Kalevipoja 7, third floor." in text
    assert "<p>" not in text  # the plain alternative, not the HTML one
    assert "## Attachment: inventory.csv" in lines
    assert "Product: Lantern; Warehouse: Porto; Units: 430" in lines


def test_extract_eml_html_only_body_is_read_as_text() -> None:
    data = (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: Menu\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n"
        b"<html><body><h2>Friday</h2><p>Soup of the day: borscht.</p></body></html>"
    )
    text = _text(data, "menu.eml")
    assert "## Friday" in text.splitlines()
    assert "Soup of the day: borscht." in text


def test_extract_json_records_become_rows_under_their_key() -> None:
    data = b'{"name": "catalog", "items": [{"sku": "A-1", "price": 3.5}, {"sku": "B-2"}]}'
    text = _text(data, "catalog.json")
    assert "name: catalog" in text.splitlines()
    assert "# items" in text.splitlines()
    assert "sku: A-1; price: 3.5" in text.splitlines()


def test_extract_rtf_reads_the_text() -> None:
    data = rb"{\rtf1\ansi{\fonttbl\f0\fswiss Helvetica;}\f0\pard The vault code is 4417.\par}"
    assert "The vault code is 4417." in _text(data, "memo.rtf")


@pytest.mark.parametrize(
    ("data", "filename"),
    [
        (b'{"note": "half \\ud800 a pair"}', "note.json"),
        (rb"{\rtf1 half \u-10240? a pair}", "n.rtf"),
    ],
)
def test_extract_lone_surrogate_becomes_replacement_character(data: bytes, filename: str) -> None:
    text = _text(data, filename)
    assert "\ufffd" in text
    text.encode("utf-8")  # hashable and storable


def test_extract_html_table_rows_carry_headers_and_headings_are_sections() -> None:
    html = (
        "<h1>Price list</h1><table><tr><th>Item</th><th>Price</th></tr>"
        "<tr><td>Tea</td><td>3.50</td></tr></table><h2>Notes</h2><ul><li>Cash only</li></ul>"
    )
    lines = _text(html.encode(), "prices.html").splitlines()
    assert "# Price list" in lines
    assert "Item: Tea; Price: 3.50" in lines
    assert "## Notes" in lines
    assert "- Cash only" in lines


def test_extract_body_line_like_a_heading_is_not_a_section() -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("# not a heading, a hashtag")
    data = _bytes(document)
    text = _text(data, "tags.docx")
    assert markdown_headings(chunk_text(text, sections=True)) == [""]


def _bytes(document: Any) -> bytes:
    import io

    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


# --- recognising the type ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maker", "expected"),
    [
        (files.docx_report, DOCX),
        (files.pptx_deck, PPTX),
        (files.xlsx_workbook, XLSX),
        (files.epub_book, EPUB),
    ],
)
def test_detect_zip_formats_by_members_whatever_the_name(maker: Any, expected: str) -> None:
    assert detect(maker(), "upload.bin", LIMITS) == expected
    assert detect(maker(), "misnamed.pdf", LIMITS) == expected


def test_detect_eml_without_extension_by_its_headers() -> None:
    assert detect(files.eml_message(), "message", LIMITS) == EML


def test_detect_text_named_docx_is_422() -> None:
    with pytest.raises(InvalidInput, match=r"\.docx"):
        detect(b"just some text", "fake.docx", LIMITS)


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512, "old.doc"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "photo.png"),
        (b"anything", "tool.exe"),
    ],
)
def test_detect_unaccepted_type_is_415_listing_accepted(data: bytes, name: str) -> None:
    with pytest.raises(UnsupportedMediaType) as raised:
        detect(data, name, LIMITS)
    assert ACCEPTED in raised.value.detail
    for suffix in (".docx", ".pptx", ".xlsx", ".csv", ".epub", ".eml"):
        assert suffix in raised.value.detail


def test_detect_zip_that_is_no_office_file_is_415() -> None:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(UnsupportedMediaType, match="zip archive"):
        detect(out.getvalue(), "bundle.docx", LIMITS)


# --- numbers, sentences, sections ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fmt", "shown"),
    [
        (4100000.5, "#,##0.00", "4,100,000.50"),
        (4100000, '#,##0.0,, "M"', "4.1 M"),
        (0.4123, "0.0%", "41.2%"),
        (-1234.5, "#,##0.00;(#,##0.00)", "(1,234.50)"),
        (1234.5, "[$€-407] #,##0.00", "€ 1,234.50"),
        (1234.5, "_($* #,##0.00_)", "$1,234.50"),
        (0.30000000000000004, "General", "0.3"),
        (12345678, "0.00E+00", "1.23E+07"),
        (7, "0000", "0007"),
    ],
)
def test_format_number_shows_value_as_the_sheet_does(value: float, fmt: str, shown: str) -> None:
    assert format_number(value, fmt) == shown


def test_split_sentences_keeps_numbers_and_addresses_whole() -> None:
    text = "Revenue was 4,100,000.50 last year. Mail facilities@example.com or see v1.2.3 now!"
    assert split_sentences(text) == [
        "Revenue was 4,100,000.50 last year.",
        "Mail facilities@example.com or see v1.2.3 now!",
    ]


def test_chunk_sections_never_span_two_headings() -> None:
    text = _text(files.xlsx_workbook(), "book.xlsx") + "\n\n" + _text(files.pptx_deck(), "d.pptx")
    chunks = chunk_text(text, max_tokens=60, overlap_tokens=20, sections=True)
    assert len(chunks) == 5  # two sheets, three slides
    for chunk in chunks:
        lines = chunk.split("\n")
        content = next(i for i, line in enumerate(lines) if not line.startswith("#"))
        assert not any(line.startswith("#") for line in lines[content:]), chunk
    assert markdown_headings(chunks) == [
        "Sales",
        "Staff",
        "Slide 1: Kickoff",
        "Slide 2: Launch plan",
        "Slide 3: Budget",
    ]


def test_chunk_sections_heading_with_number_stays_one_unit() -> None:
    chunks = chunk_text("# 1. Scope\n\nIt covers everything.", sections=True)
    assert markdown_headings(chunks) == ["1. Scope"]


# --- through the API: upload, wait until ready, ask -------------------------------------------


async def _ask(client: httpx.AsyncClient, headers: dict[str, str], question: str) -> Any:
    response = await client.post("/api/chat/", json={"message": question}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    ("filename", "maker", "question", "answer", "section"),
    [
        (
            "report.docx",
            files.docx_report,
            "What was the Q3 revenue in EMEA?",
            "4.1 M",
            "Regional revenue",
        ),
        (
            "deck.pptx",
            files.pptx_deck,
            "Where does the Zephyr rollout start?",
            "Lisbon",
            "Slide 2: Launch plan",
        ),
        ("book.xlsx", files.xlsx_workbook, "What is the extension of Grete Holm?", "4471", "Staff"),
        (
            "inventory.csv",
            files.csv_table,
            "How many quill pen units are in Gdansk?",
            "85",
            "inventory",
        ),
        (
            "novel.epub",
            files.epub_book,
            "What was the lighthouse keeper's name?",
            "Ottilie Brandt",
            "The lighthouse",
        ),
        (
            "move.eml",
            files.eml_message,
            "Where is the new office?",
            "Kalevipoja 7",
            "Office move on Monday",
        ),
    ],
)
async def test_upload_format_answers_from_the_right_section(
    client: httpx.AsyncClient,
    state: State,
    filename: str,
    maker: Any,
    question: str,
    answer: str,
    section: str,
) -> None:
    headers = await new_user(client)
    upload = await client.post(
        "/api/documents/",
        # The client's Content-Type is not trusted: the content says what the file is.
        files={"file": (filename, maker(), "application/octet-stream")},
        headers=headers,
    )
    assert upload.status_code == 201, upload.text
    await state["documents"].wait_idle()
    assert upload.json()["status"] == "ready"

    reply = await _ask(client, headers, question)

    carrying = [s for s in reply["sources"] if answer in s["snippet"]]
    assert answer in reply["response"] or carrying, reply
    assert any(section in s["title"] for s in carrying), reply["sources"]
    assert all(s["title"].startswith(filename) for s in reply["sources"])


async def test_upload_docx_number_and_address_survive_into_answer(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    upload = await client.post(
        "/api/documents/",
        files={"file": ("report.docx", files.docx_report(), "application/msword")},
        headers=headers,
    )
    assert upload.status_code == 201, upload.text
    reply = await _ask(client, headers, "Where should facilities requests be sent?")
    combined = reply["response"] + " ".join(s["snippet"] for s in reply["sources"])
    assert "facilities@example.com" in combined
    assert "example. com" not in combined


async def test_upload_unaccepted_type_415_names_accepted_types(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    response = await client.post(
        "/api/documents/",
        files={
            "file": (
                "legacy.doc",
                b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512,
                "application/msword",
            )
        },
        headers=headers,
    )
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert ".docx" in response.json()["detail"]
    assert ".eml" in response.json()["detail"]


async def test_upload_csv_content_type_is_recorded_from_content(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    response = await client.post(
        "/api/documents/",
        files={"file": ("inventory.csv", files.csv_table(), "text/plain")},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["content_type"] == CSV
