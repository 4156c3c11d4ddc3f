"""Shared fixtures: one real index (real embedded model, real Chroma) in a temp folder per session."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

import pytest  # noqa: E402

from assistant.service import PolicyAssistant  # noqa: E402
from assistant.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def built_assistant(tmp_path_factory: pytest.TempPathFactory) -> PolicyAssistant:
    """The shipped corpus indexed once in a temp folder (read-only use: do not ingest into it)."""
    data = tmp_path_factory.mktemp("index")
    assistant = PolicyAssistant(Settings(data_dir=data, admin_token=None, llm_provider="none"))
    assistant.ensure_index()
    return assistant
