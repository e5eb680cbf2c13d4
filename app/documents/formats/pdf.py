"""PDF with pypdf, page by page under the page and character ceilings."""

from __future__ import annotations

import io
import logging

from app.core.errors import InvalidInput, PayloadTooLarge
from app.documents.formats.limits import ExtractionLimits, too_long


def extract_pdf(data: bytes, limits: ExtractionLimits) -> str:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, LimitReachedError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # thousands of warnings per bad file
    parts: list[str] = []
    size = 0
    try:
        reader = PdfReader(io.BytesIO(data))
        if len(reader.pages) > limits.max_pdf_pages:
            raise PayloadTooLarge(
                f"The PDF has {len(reader.pages)} pages; at most {limits.max_pdf_pages} "
                "are accepted (MAX_PDF_PAGES)."
            )
        for page in reader.pages:
            text = page.extract_text() or ""
            size += len(text) + 2
            if size > limits.max_chars:
                raise too_long(limits)
            parts.append(text)
    except LimitReachedError as exc:
        raise PayloadTooLarge("The PDF expands beyond the size pypdf accepts.") from exc
    except DependencyError as exc:
        raise InvalidInput("The PDF is encrypted; upload an unencrypted copy.") from exc
    except NotImplementedError as exc:
        raise InvalidInput("The PDF uses a feature that cannot be read.") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InvalidInput("The PDF could not be read.") from exc
    return "\n\n".join(parts)
