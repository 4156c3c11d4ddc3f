"""Read .txt, .md, .docx, .pdf and .html files into plain text plus header metadata.

Usage::

    loader = DocumentLoader()
    text, header = loader.run(Path("notice.docx"))
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from corpus.parsing import parse_header

SUPPORTED_SUFFIXES = (".txt", ".md", ".docx", ".pdf", ".html", ".htm")


class LoaderError(ValueError):
    """A file that cannot be read as a document (unsupported, corrupt, empty)."""


class DocumentLoader:
    """Load a document from a path or from bytes.

    Args:
        max_bytes: files larger than this are refused (a clear error, nothing indexed).
        max_unpacked_bytes: a .docx whose parts unpack to more than this is refused before it is
            opened (a zip bomb costs nothing).
        max_pages: a PDF with more pages is refused before any page is read.
        max_seconds: .docx, .pdf and .html files are parsed in a child process that is killed after this many
            seconds (a clear error, nothing indexed); ``0`` parses in this process with no time limit. Plain
            text (.txt, .md) is always decoded in this process: its cost is linear in ``max_bytes``.
    """

    def __init__(self, max_bytes: int = 20 * 1024 * 1024, max_unpacked_bytes: int = 100 * 1024 * 1024,
                 max_pages: int = 2000, max_seconds: float = 0.0) -> None:
        self.max_bytes = max_bytes
        self.max_unpacked_bytes = max_unpacked_bytes
        self.max_pages = max_pages
        self.max_seconds = max_seconds

    def run(self, path: Path) -> tuple[str, dict[str, str]]:
        """Return ``(text, header_metadata)`` for the file at ``path``."""
        if not path.exists() or not path.is_file():
            raise LoaderError(f"cannot read {path}: no such file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise LoaderError(f"cannot read {path}: {exc.strerror}") from exc
        return self.load_bytes(data, path.name)

    def load_bytes(self, data: bytes, filename: str) -> tuple[str, dict[str, str]]:
        suffix = Path(filename).suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            raise LoaderError(
                f"unsupported format {suffix or '(none)'!r} for {filename}; use one of {', '.join(SUPPORTED_SUFFIXES)}"
            )
        if len(data) > self.max_bytes:
            raise LoaderError(f"{filename} is {len(data)} bytes; the limit is {self.max_bytes}")
        if not data.strip():
            raise LoaderError(f"{filename} is empty")
        if suffix in (".txt", ".md") or self.max_seconds <= 0:
            text = self._extract(suffix, data, filename)
        else:
            text = self._extract_in_child(suffix, data, filename)
        text = text.lstrip("\ufeff")
        header: dict[str, str] = {}
        first, _, rest = text.partition("\n")
        if re.match(r"^#\s*标题[:：]", first):
            header = parse_header(first)
            text = rest
        if not text.strip():
            raise LoaderError(f"{filename} contains no text")
        return text, header

    def _extract(self, suffix: str, data: bytes, filename: str) -> str:
        try:
            if suffix in (".txt", ".md"):
                return self._decode(data, filename)
            if suffix == ".docx":
                return self._docx(data)
            if suffix == ".pdf":
                return self._pdf(data)
            return self._html(self._decode(data, filename))
        except LoaderError:
            raise
        except Exception as exc:  # noqa: BLE001 - any parser failure means a broken file
            raise LoaderError(f"cannot read {filename} as {suffix}: the file looks corrupt ({type(exc).__name__})") from exc

    def _extract_in_child(self, suffix: str, data: bytes, filename: str) -> str:
        """:meth:`_extract` in a fresh (spawned) process, killed after ``max_seconds``."""
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded server
        receive, send = ctx.Pipe(duplex=False)
        limits = DocumentLoader(self.max_bytes, self.max_unpacked_bytes, self.max_pages, 0.0)
        child = ctx.Process(target=_child_extract, args=(limits, suffix, data, filename, send), daemon=True)
        child.start()
        send.close()
        try:
            if not receive.poll(self.max_seconds):
                raise LoaderError(f"parsing {filename} took longer than the limit of {self.max_seconds:g} s; "
                                  "the file is refused (too complex or crafted)")
            try:
                ok, value = receive.recv()
            except EOFError:
                child.join(1)
                raise LoaderError(f"cannot read {filename} as {suffix}: the parser stopped "
                                  f"(exit code {child.exitcode})") from None
        finally:
            receive.close()
            if child.is_alive():
                child.kill()
            child.join(5)
        if not ok:
            raise LoaderError(value)
        return str(value)

    @staticmethod
    def _decode(data: bytes, filename: str) -> str:
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                continue
        raise LoaderError(f"{filename} is neither UTF-8 nor GB18030 text")

    def _docx(self, data: bytes) -> str:
        import zipfile

        import docx  # python-docx

        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > self.max_unpacked_bytes:
            raise LoaderError(f"the .docx unpacks to {unpacked} bytes; the limit is {self.max_unpacked_bytes}")
        document = docx.Document(io.BytesIO(data))
        return "\n".join(p.text for p in document.paragraphs)

    def _pdf(self, data: bytes) -> str:
        from pypdf import PdfReader

        reader = PdfReader(io.BytesIO(data))
        if len(reader.pages) > self.max_pages:
            raise LoaderError(f"the PDF has {len(reader.pages)} pages; the limit is {self.max_pages}")
        pages = [page.extract_text() or "" for page in reader.pages]
        return "\n".join(pages)

    @staticmethod
    def _html(html: str) -> str:
        from bs4 import BeautifulSoup

        soup = BeautifulSoup(html, "html.parser")
        for tag in soup(["script", "style", "nav", "header", "footer"]):
            tag.decompose()
        blocks = [el.get_text(" ", strip=True) for el in soup.find_all(["h1", "h2", "h3", "h4", "p", "li", "div"])
                  if not el.find(["p", "li", "div", "h1", "h2", "h3", "h4"])]
        text = "\n".join(b for b in blocks if b)
        return text or soup.get_text("\n", strip=True)


def _child_extract(loader: DocumentLoader, suffix: str, data: bytes, filename: str, send) -> None:  # noqa: ANN001
    """Run in the child process: send ``(True, text)`` or ``(False, message)``."""
    try:
        result: tuple[bool, str] = (True, loader._extract(suffix, data, filename))
    except LoaderError as exc:
        result = (False, str(exc))
    except MemoryError:
        result = (False, f"cannot read {filename}: it needs too much memory to parse")
    send.send(result)
    send.close()
