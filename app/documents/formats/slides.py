"""PowerPoint (.pptx) with python-pptx: one section per slide, titled by the slide title
("Slide 3: Q3 results"), its text boxes, tables and grouped shapes, then its notes."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from app.documents.formats.archive import open_zip
from app.documents.formats.limits import ExtractionLimits, Writer, one_line
from app.documents.formats.tables import render_table

KIND = "PowerPoint presentation"


def _shape_blocks(shapes: Iterable[Any], skip: Any, depth: int, writer: Writer) -> None:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    for shape in shapes:
        if skip is not None and shape.shape_id == skip.shape_id:
            continue
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP and depth < 8:
            _shape_blocks(shape.shapes, None, depth + 1, writer)
        elif getattr(shape, "has_table", False) and shape.has_table:
            rows = [[cell.text for cell in row.cells] for row in shape.table.rows]
            writer.lines(render_table(rows))
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            lines = []
            for paragraph in shape.text_frame.paragraphs:
                text = one_line("".join(run.text for run in paragraph.runs) or paragraph.text)
                if text:
                    indent = "  " * min(paragraph.level, 8)
                    lines.append(f"{indent}- {text}" if paragraph.level else text)
            writer.lines(lines)


def extract_pptx(data: bytes, limits: ExtractionLimits) -> str:
    open_zip(data, limits, KIND).close()
    from pptx import Presentation

    presentation = Presentation(io.BytesIO(data))
    writer = Writer(limits)
    for number, slide in enumerate(presentation.slides, start=1):
        title_shape = slide.shapes.title
        title = one_line(title_shape.text_frame.text) if title_shape is not None else ""
        writer.heading(1, f"Slide {number}: {title}" if title else f"Slide {number}")
        _shape_blocks(slide.shapes, title_shape, 0, writer)
        if slide.has_notes_slide:
            frame = slide.notes_slide.notes_text_frame
            notes = frame.text.strip() if frame is not None else ""
            if notes:
                writer.paragraph(f"Notes: {notes}")
    return writer.text()
