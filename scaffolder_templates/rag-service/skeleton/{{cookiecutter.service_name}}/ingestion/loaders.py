"""Turn files and web pages into Markdown documents with source metadata.

Every failure is a LoadProblem the run reports; none stops the run.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup, Tag
from markdownify import MarkdownConverter
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from ingestion.boilerplate import BoilerplateProfile

MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdx", ".txt"}
HTML_SUFFIXES = {".html", ".htm"}
PDF_SUFFIXES = {".pdf"}
SUPPORTED_SUFFIXES = MARKDOWN_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES
# Elements that never carry document text; scripts in particular must not be indexed.
_DROPPED_TAGS = ("script", "style", "noscript", "iframe", "svg", "nav", "footer")
# ARIA landmarks that say "not content" wherever a site puts them.
_DROPPED_ROLES = ("navigation", "search", "banner", "contentinfo")
# Identifiers (pg_dump, deadlock_timeout, SELECT *) stay as written: escaping them for
# Markdown renderers breaks exact-phrase matching in the index, the citations' snippets
# and the LLM's context, and nothing renders this Markdown.
_MARKDOWN = MarkdownConverter(
    heading_style="ATX",
    strip=["a", "img"],
    escape_underscores=False,
    escape_asterisks=False,
    escape_misc=False,
)
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)---[ \t]*\n", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*(.+?)[ \t]*$", re.MULTILINE)


@dataclass
class LoadedDocument:
    """One document (or one PDF page) ready to chunk."""

    source: str
    title: str
    text: str
    kind: str
    metadata: dict[str, Any] = field(default_factory=dict)


class LoadProblem(Exception):
    """A document that could not be ingested; the message says why and what to do."""


@dataclass
class LoadResult:
    documents: list[LoadedDocument]
    warnings: list[str] = field(default_factory=list)


def _decode_text(data: bytes, source: str) -> str:
    if b"\x00" in data[:8192]:
        raise LoadProblem("binary content (NUL bytes) in a text file; remove it from the sources")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LoadProblem(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def normalize_title(title: str) -> str:
    """One line of plain spaces: no non-breaking or zero-width spaces, no inline HTML,
    links, Markdown emphasis or escapes, no trailing heading hashes."""
    title = title.replace("\u200b", "").replace("\ufeff", "")
    title = re.sub(r"<[^>]*>", "", title)  # inline HTML (<a name="x"></a>) in headings
    title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title)  # [text](link) -> text
    title = re.sub(r"\\([\\`*_{}\[\]()#+\-.!|])", r"\1", title)
    title = re.sub(r"(\*\*|__|`)", "", title)
    title = " ".join(title.split())  # str.split() splits on NBSP and every Unicode space
    return title.strip().strip("#").strip()


def _first_heading(markdown: str) -> str | None:
    match = re.search(r"^#{1,6}\s+(.+?)\s*#*\s*$", markdown, flags=re.MULTILINE)
    return normalize_title(match.group(1)) if match else None


def split_front_matter(text: str) -> tuple[str, str | None]:
    """Jekyll/Hugo/MkDocs front matter (--- YAML ---) off the text, and its title."""
    match = _FRONT_MATTER.match(text)
    if not match:
        return text, None
    title = _FRONT_MATTER_TITLE.search(match.group(1))
    value = title.group(1).strip().strip("\"'") if title else None
    return text[match.end() :], normalize_title(value) if value else None


def load_markdown(data: bytes, source: str) -> LoadResult:
    text, front_title = split_front_matter(_decode_text(data, source))
    if not text.strip():
        raise LoadProblem("empty document")
    title = (
        front_title
        or _first_heading(text)
        or normalize_title(Path(source).stem.replace("-", " ").replace("_", " "))
    )
    return LoadResult([LoadedDocument(source, title, text, "markdown")])


@dataclass
class _PageParts:
    dropped: list[Tag] = field(default_factory=list)
    scripts: int = 0
    title: Tag | None = None
    confluence_title: Tag | None = None
    main_content: Tag | None = None


def _read_page(soup: BeautifulSoup) -> _PageParts:
    """In one walk over the page (bs4's find_all and CSS selectors walk it once per call):
    the elements that never carry text (_DROPPED_TAGS, _DROPPED_ROLES), and, outside them,
    the <title>, Confluence's #title-text and #main-content."""
    parts = _PageParts()
    inside_dropped: set[int] = set()
    for tag in soup.descendants:
        if not isinstance(tag, Tag):
            continue
        if tag.name == "script":
            parts.scripts += 1
        if id(tag.parent) in inside_dropped:
            inside_dropped.add(id(tag))
            continue
        if tag.name in _DROPPED_TAGS or tag.get("role") in _DROPPED_ROLES:
            parts.dropped.append(tag)
            inside_dropped.add(id(tag))
            continue
        if tag.name == "title" and parts.title is None:
            parts.title = tag
        ident = tag.get("id")
        if ident == "title-text" and parts.confluence_title is None:
            parts.confluence_title = tag
        elif ident == "main-content" and parts.main_content is None:
            parts.main_content = tag
    return parts


def load_html(
    data: bytes, source: str, *, boilerplate: BoilerplateProfile | None = None
) -> LoadResult:
    """HTML and Confluence export pages -> Markdown: scripts, styles, ARIA navigation and
    (with the site's BoilerplateProfile) the blocks repeated around every page's content
    removed; identifiers are not escaped."""
    text = _decode_text(data, source)
    soup = BeautifulSoup(text, "html.parser")
    warnings = []
    page = _read_page(soup)
    for tag in page.dropped:
        if not tag.decomposed:  # not already gone with an enclosing element
            tag.decompose()
    if page.scripts:
        warnings.append(f"removed {page.scripts} <script> element(s)")
    # The title before the chrome goes: Confluence keeps it in the page header.
    title_tag = page.confluence_title or page.title
    title = normalize_title(title_tag.get_text(" ", strip=True)) if title_tag else ""
    if page.confluence_title is not None:
        title = re.sub(r"^.*? : ", "", title)  # "Space name : Page title"
    if boilerplate is not None and soup.body is not None:
        boilerplate.strip(soup.body)
    # Confluence exports wrap the page in #main-content and repeat breadcrumbs around it.
    main = page.main_content
    if main is None or main.decomposed:
        main = soup.body or soup
    markdown = _MARKDOWN.convert_soup(main)
    markdown = re.sub(r"[ \t]+\n", "\n", markdown.replace("\xa0", " "))
    markdown = re.sub(r"\n{3,}", "\n\n", markdown).strip()
    if not markdown:
        raise LoadProblem("no text left after removing markup")
    title = title or _first_heading(markdown) or Path(source).stem
    return LoadResult([LoadedDocument(source, title, markdown, "html")], warnings)


def load_pdf(data: bytes, source: str) -> LoadResult:
    """One document per page, so citations can name the page."""
    if not data:
        raise LoadProblem("empty PDF file (0 bytes)")
    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoadProblem(f"unreadable PDF: {exc}") from exc
    title = ""
    try:
        if reader.metadata and reader.metadata.title:
            title = str(reader.metadata.title)
    except (PdfReadError, ValueError, KeyError, TypeError):
        title = ""
    title = normalize_title(title) or Path(source).stem
    documents = [
        LoadedDocument(source, title, text, "pdf", {"page": number})
        for number, text in enumerate(pages, start=1)
        if text.strip()
    ]
    if not documents:
        raise LoadProblem(
            f"no extractable text in {len(pages)} page(s) (scanned PDF?); add a text layer (OCR)"
        )
    return LoadResult(documents)


def load_bytes(
    data: bytes,
    source: str,
    *,
    content_type: str = "",
    max_bytes: int,
    boilerplate: BoilerplateProfile | None = None,
) -> LoadResult:
    if len(data) > max_bytes:
        raise LoadProblem(
            f"document is {len(data)} bytes, over the {max_bytes}-byte limit "
            "(MAX_DOCUMENT_BYTES); split it or raise the limit"
        )
    suffix = Path(source.split("?", 1)[0]).suffix.lower()
    if suffix in PDF_SUFFIXES or "pdf" in content_type:
        return load_pdf(data, source)
    if suffix in HTML_SUFFIXES or "html" in content_type:
        return load_html(data, source, boilerplate=boilerplate)
    if suffix in MARKDOWN_SUFFIXES or content_type.startswith("text/"):
        return load_markdown(data, source)
    raise LoadProblem(
        f"unsupported file type {suffix or content_type or '(none)'}; "
        f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
    )


def read_file(path: Path, *, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LoadProblem(
                f"document is {size} bytes, over the {max_bytes}-byte limit "
                "(MAX_DOCUMENT_BYTES); split it or raise the limit"
            )
        return path.read_bytes()
    except OSError as exc:
        raise LoadProblem(f"cannot read file: {exc.strerror or exc}") from exc


def load_file(path: Path, source: str, *, max_bytes: int) -> LoadResult:
    return load_bytes(read_file(path, max_bytes=max_bytes), source, max_bytes=max_bytes)
