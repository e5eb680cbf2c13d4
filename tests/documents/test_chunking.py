from __future__ import annotations

import itertools

import pytest

from app.core.errors import UnsupportedMediaType
from app.documents.chunking import chunk_text, source_title
from app.documents.formats import content_type_for, html_to_text
from app.rag.text import count_tokens, split_sentences

PROSE = " ".join(
    f"Sentence number {n} talks about topic {n % 7} in some detail." for n in range(40)
)


def test_chunk_text_respects_token_budget() -> None:
    chunks = chunk_text(PROSE, max_tokens=50, overlap_tokens=10)
    assert len(chunks) > 1
    assert all(count_tokens(c) <= 50 for c in chunks)


def test_chunk_text_keeps_whole_sentences() -> None:
    sentences = set(split_sentences(PROSE))
    for chunk in chunk_text(PROSE, max_tokens=50, overlap_tokens=10):
        assert set(split_sentences(chunk)) <= sentences


def test_chunk_text_overlaps_last_sentence_of_previous_chunk() -> None:
    chunks = chunk_text(PROSE, max_tokens=50, overlap_tokens=15)
    for previous, current in itertools.pairwise(chunks):
        assert split_sentences(current)[0] == split_sentences(previous)[-1]


def test_chunk_text_covers_every_sentence() -> None:
    chunks = chunk_text(PROSE, max_tokens=50, overlap_tokens=10)
    covered = {s for c in chunks for s in split_sentences(c)}
    assert covered == set(split_sentences(PROSE))


def test_chunk_text_splits_overlong_sentence_between_words() -> None:
    sentence = " ".join(["word"] * 300) + "."
    chunks = chunk_text(sentence, max_tokens=40, overlap_tokens=5)
    assert len(chunks) >= 7
    assert all(count_tokens(c) <= 40 for c in chunks)
    assert " ".join(chunks).count("word") >= 300


def test_chunk_text_short_text_is_one_chunk() -> None:
    assert chunk_text("Just one line.", max_tokens=50, overlap_tokens=10) == ["Just one line."]
    assert chunk_text("   ", max_tokens=50, overlap_tokens=10) == []


def test_split_sentences_handles_paragraphs_and_lists() -> None:
    text = "# Title\n\nFirst point. Second point!\n\n- item one\n- item two"
    assert split_sentences(text) == [
        "# Title",
        "First point.",
        "Second point!",
        "- item one",
        "- item two",
    ]


def test_html_to_text_drops_scripts_and_keeps_blocks() -> None:
    html = "<html><head><title>T</title><style>p{}</style></head><body><h1>Head</h1><p>One."
    html += "</p><script>alert(1)</script><p>Two &amp; three.</p></body></html>"
    text = html_to_text(html)
    assert "alert" not in text
    assert "p{}" not in text
    assert split_sentences(text) == ["# Head", "One.", "Two & three."]


def test_content_type_for_known_and_unknown() -> None:
    assert content_type_for("Guide.PDF") == "application/pdf"
    assert content_type_for("notes.md") == "text/markdown"
    with pytest.raises(UnsupportedMediaType, match=r"\.zip"):
        content_type_for("archive.zip")


@pytest.mark.parametrize(
    "text", ["", "a", "word " * 50, "supercalifragilisticexpialidocious!!", "é, ü; 123.45 — ok"]
)
def test_count_tokens_never_exceeds_characters(text: str) -> None:
    assert count_tokens(text) <= len(text)


def test_source_title_heading_repeating_the_title_is_left_out() -> None:
    assert source_title("Handbook", "Handbook") == "Handbook"
    assert source_title("handbook.md", "Handbook > Leave") == "handbook.md — Leave"
    assert source_title("Q3 report.docx", "Regional revenue") == "Q3 report.docx — Regional revenue"
    assert source_title("notes", "") == "notes"
