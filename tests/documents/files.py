"""Documents of every accepted format, made with the libraries that write them (never
downloaded), and hostile ones made by hand: bombs, corrupt and over-deep files."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime


def docx_report() -> bytes:
    """Headings, a list and a table whose answer sits in one cell."""
    import docx

    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("This report covers the third quarter.")
    document.add_heading("Regional revenue", level=2)
    document.add_paragraph("Revenue by region, in millions.")
    table = document.add_table(rows=3, cols=2)
    for row, values in zip(
        table.rows, [("Region", "Q3 revenue"), ("EMEA", "4.1 M"), ("APAC", "2.7 M")], strict=True
    ):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_heading("Facilities", level=2)
    document.add_paragraph("Send requests to facilities@example.com before Friday.")
    document.add_paragraph("Badge readers on every floor", style="List Bullet")
    document.add_paragraph("Bike racks in the basement", style="List Bullet")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pptx_deck() -> bytes:
    from pptx import Presentation

    deck = Presentation()
    layout = deck.slide_layouts[1]  # title and content
    for title, body, notes in [
        ("Kickoff", "Welcome to the offsite.", "Thank the organisers."),
        ("Launch plan", "The Zephyr rollout starts in Lisbon on 12 May.", "Mention the pilot."),
        ("Budget", "Travel is capped at 900 euros per person.", ""),
    ]:
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx_workbook() -> bytes:
    """Two sheets; numbers with display formats; an empty row and an empty column."""
    from openpyxl import Workbook

    book = Workbook()
    sales = book.active
    assert sales is not None
    sales.title = "Sales"
    sales.append(["Region", None, "Revenue", "Share"])
    sales.append([None, None, None, None])
    sales.append(["EMEA", None, 4100000.5, 0.4123])
    sales.append(["Nordics", None, 987654.25, 0.1])
    for row in sales.iter_rows(min_row=2, min_col=3, max_col=3):
        for cell in row:
            cell.number_format = "#,##0.00"
    for row in sales.iter_rows(min_row=2, min_col=4, max_col=4):
        for cell in row:
            cell.number_format = "0.0%"
    staff = book.create_sheet("Staff")
    staff.append(["Name", "Office", "Extension"])
    staff.append(["Grete Holm", "Tallinn", 4471])
    staff.append(["Ivo Paas", "Tartu", 4472])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_table() -> bytes:
    return (
        b"Product,Warehouse,Units\r\n"
        b"Anvil,Rotterdam,1200\r\n"
        b"Quill pen,Gdansk,85\r\n"
        b",,\r\n"
        b"Lantern,Porto,430\r\n"
    )


def epub_book() -> bytes:
    chapters = {
        "ch1.xhtml": ("Arrival", "<p>The ship docked at Valparaiso at dawn.</p>"),
        "ch2.xhtml": ("The lighthouse", "<p>The keeper's name was Ottilie Brandt.</p>"),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as book:
        book.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        book.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" '
            'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
            "</rootfiles></container>",
        )
        manifest = "".join(
            f'<item id="{name}" href="{name}" media-type="application/xhtml+xml"/>'
            for name in chapters
        )
        spine = "".join(f'<itemref idref="{name}"/>' for name in chapters)
        book.writestr(
            "OEBPS/content.opf",
            '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
            f"<manifest>{manifest}</manifest><spine>{spine}</spine></package>",
        )
        for name, (title, body) in chapters.items():
            book.writestr(
                f"OEBPS/{name}",
                '<?xml version="1.0" encoding="utf-8"?><!DOCTYPE html>'
                '<html xmlns="http://www.w3.org/1999/xhtml"><head>'
                f"<title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>",
            )
    return out.getvalue()


def eml_message(attachment: tuple[str, bytes] | None = None) -> bytes:
    message = EmailMessage()
    message["Subject"] = "Office move on Monday"
    message["From"] = "Facilities <facilities@example.com>"
    message["To"] = "all-staff@example.com"
    message["Date"] = format_datetime(datetime(2026, 11, 30, 9, 15, tzinfo=UTC))
    message.set_content("The new office is at Kalevipoja 7, third floor.\nBring your badge.")
    message.add_alternative(
        "<p>The new office is at <b>Kalevipoja 7</b>, third floor.</p>", subtype="html"
    )
    if attachment is not None:
        name, data = attachment
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return message.as_bytes()


# --- hostile files -------------------------------------------------------------------------


def zip_bomb(member: str = "word/document.xml", megabytes: int = 200) -> bytes:
    """A .docx-shaped archive whose document part inflates to `megabytes` of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as bomb:
        bomb.writestr("[Content_Types].xml", "<Types/>")
        with bomb.open(member, "w", force_zip64=True) as part:
            block = b"\0" * (1024 * 1024)
            for _ in range(megabytes):
                part.write(block)
    return out.getvalue()


def many_members(count: int) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        for n in range(count):
            archive.writestr(f"word/media/m{n}.xml", "")
    return out.getvalue()


def replace_member(data: bytes, name: str, content: bytes) -> bytes:
    """The same archive with one member's content replaced."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target,
    ):
        assert name in source.namelist(), name
        for info in source.infolist():
            body = content if info.filename == name else source.read(info)
            target.writestr(info.filename, body)
    return out.getvalue()


LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + b"".join(
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">\n'.encode()
        for n in range(1, 10)
    )
    + b"]>\n"
)


def docx_paragraphs(count: int) -> bytes:
    """A Word document of `count` short numbered paragraphs (six tags each), compressed
    well under the zip ratio ceiling."""
    body = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        b"<w:body>"
        + b"".join(b"<w:p><w:r><w:t>%d</w:t></w:r></w:p>" % n for n in range(count))
        + b"</w:body></w:document>"
    )
    return replace_member(docx_report(), "word/document.xml", body)


def docx_entity_bomb() -> bytes:
    body = (
        LAUGHS
        + b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        b"<w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>"
    )
    return replace_member(docx_report(), "word/document.xml", body)


def xlsx_empty_styled_rows(rows: int = 1_000_000, *, dimension: bool = True) -> bytes:
    """One sheet of `rows` styled rows without a value; with or without a declared size."""
    base = xlsx_workbook()
    head = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    )
    if dimension:
        head += f'<dimension ref="A1:A{rows}"/>'.encode()
    body = b"".join(
        b'<row r="%d" s="1" customFormat="1"><c r="A%d" s="1"/></row>' % (n, n)
        for n in range(1, rows + 1)
    )
    sheet = head + b"<sheetData>" + body + b"</sheetData></worksheet>"
    return replace_member(base, "xl/worksheets/sheet1.xml", sheet)


def wide_csv(columns: int = 100_000) -> bytes:
    header = ",".join(f"c{n}" for n in range(columns))
    return (header + "\n" + ",".join("1" for _ in range(columns)) + "\n").encode()


def nested_mime(depth: int = 2_000) -> bytes:
    lines = ["From: a@example.com", "To: b@example.com", "Subject: nested", "MIME-Version: 1.0"]
    lines.append('Content-Type: multipart/mixed; boundary="b0"')
    lines.append("")
    for level in range(1, depth + 1):
        lines += [f"--b{level - 1}", f'Content-Type: multipart/mixed; boundary="b{level}"', ""]
    lines += [f"--b{depth}", "Content-Type: text/plain", "", "deep", f"--b{depth}--"]
    return "\r\n".join(lines).encode()
