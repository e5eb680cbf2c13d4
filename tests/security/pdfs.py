"""Hostile PDFs, built byte by byte (pypdf's writer would not make them)."""

from __future__ import annotations

import io
import zlib


def build_pdf(
    pages: int,
    line: str = "The harbour of Tallinn opens at seven in the morning",
    repeat: int = 1,
    *,
    stream_filter: str | None = None,
    inflates_to: int = 0,
) -> bytes:
    """A PDF whose `pages` pages all draw ONE shared content stream of `repeat` lines: a few
    KB that extract to `pages * repeat` lines. `inflates_to` makes the stream a flate bomb of
    that many bytes; `stream_filter` names a filter for it (unknown or unsupported ones)."""
    ops = " ".join(f"({line}) Tj 0 -14 Td" for _ in range(repeat))
    stream = f"BT /F1 12 Tf 72 712 Td {ops} ET".encode()
    header = f"/Filter /{stream_filter} " if stream_filter else ""
    if inflates_to:
        stream = zlib.compress(b" " * inflates_to, 9)
        header = "/Filter /FlateDecode "
    kids = " ".join(f"{5 + i} 0 R" for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< {header}/Length {len(stream)} >>\nstream\n".encode() + stream + b"\nendstream",
        *[
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents 4 0 R >>"
        ]
        * pages,
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    trailer = f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    out.write(trailer.encode())
    return out.getvalue()
