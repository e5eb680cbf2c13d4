"""E-mail (.eml) with the standard library's `email` package: the subject as the title,
From/To/Cc/Date kept as text, the plain-text body (or the HTML one), then attachments of
accepted types as sections of the same document ("Attachment: minutes.docx").

The MIME tree is bounded before parsing (its boundaries are counted in the raw bytes) and
while walking it (parts and depth), so a deeply nested message is refused, not recursed.
"""

from __future__ import annotations

import email
import re
from collections.abc import Callable
from email import policy
from email.message import EmailMessage, Message

from app.core.errors import AppError, PayloadTooLarge, UnsupportedMediaType
from app.documents.formats.limits import ExtractionLimits, Writer, shift_headings
from app.documents.formats.markup import write_html

_BOUNDARY = re.compile(rb"boundary\s*=", re.IGNORECASE)
_HEADERS = ("From", "To", "Cc", "Date")

# Reads an attachment by its file name and bytes, as an upload would be read.
AttachmentReader = Callable[[bytes, str, ExtractionLimits], str]


def _too_big(limits: ExtractionLimits) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The e-mail has more than {limits.max_email_parts} MIME parts or nests them deeper "
        f"than {limits.max_nesting_depth} (MAX_EMAIL_PARTS, MAX_NESTING_DEPTH)."
    )


def _text_of(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return payload.decode("utf-8", errors="replace")


class _Walker:
    def __init__(self, limits: ExtractionLimits, read_attachment: AttachmentReader) -> None:
        self.limits = limits
        self.read_attachment = read_attachment
        self.parts = 0

    def parts_of(self, message: Message, depth: int) -> list[Message]:
        """Leaf parts in order; nested messages stay whole (rendered as their own
        section)."""
        if depth > self.limits.max_nesting_depth:
            raise _too_big(self.limits)
        self.parts += 1
        if self.parts > self.limits.max_email_parts:
            raise _too_big(self.limits)
        if message.is_multipart() and message.get_content_type() != "message/rfc822":
            leaves: list[Message] = []
            for child in message.get_payload():
                if isinstance(child, Message):
                    leaves.extend(self.parts_of(child, depth + 1))
            return leaves
        return [message]

    def write(self, message: Message, writer: Writer, level: int, depth: int) -> None:
        subject = str(message.get("Subject") or "").strip() or "(no subject)"
        writer.heading(level, subject)
        headers = [f"{name}: {message.get(name)}" for name in _HEADERS if message.get(name)]
        writer.lines(headers)
        leaves = self.parts_of(message, depth)
        inline = [
            p
            for p in leaves
            if p.get_content_type() in ("text/plain", "text/html")
            and not p.get_filename()
            and p.get_content_disposition() != "attachment"
        ]
        # multipart/alternative: the plain-text version when there is one.
        plain = [p for p in inline if p.get_content_type() == "text/plain"]
        for part in plain or inline:
            if part.get_content_type() == "text/html":
                write_html(_text_of(part), writer, self.limits)
            else:
                writer.paragraph(_text_of(part))
        for part in leaves:
            if part.get_content_type() == "message/rfc822":
                inner = part.get_payload()
                inner_message = inner[0] if isinstance(inner, list) and inner else None
                if isinstance(inner_message, Message):
                    self.write(inner_message, writer, min(level + 1, 6), depth + 1)
            elif part not in inline and (
                part.get_filename() or part.get_content_disposition() == "attachment"
            ):
                self._attachment(part, writer, level)

    def _attachment(self, part: Message, writer: Writer, level: int) -> None:
        name = part.get_filename() or "attachment"
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes) or not data:
            return
        try:
            text = self.read_attachment(data, name, self.limits)
        except UnsupportedMediaType:
            writer.paragraph(f"Attachment not read: {name} (type not accepted).")
            return
        except AppError as exc:
            if isinstance(exc, PayloadTooLarge):
                raise  # one ceiling for the whole message and what it carries
            writer.paragraph(f"Attachment not read: {name} ({exc.detail})")
            return
        sub = min(level + 1, 6)
        writer.heading(sub, f"Attachment: {name}")
        writer.markdown(shift_headings(text, sub))


def extract_eml(data: bytes, limits: ExtractionLimits, read_attachment: AttachmentReader) -> str:
    if len(_BOUNDARY.findall(data)) > limits.max_email_parts:
        raise _too_big(limits)
    try:
        message = email.message_from_bytes(data, _class=EmailMessage, policy=policy.default)
    except RecursionError as exc:
        raise _too_big(limits) from exc
    writer = Writer(limits)
    _Walker(limits, read_attachment).write(message, writer, 1, 0)
    return writer.text()
