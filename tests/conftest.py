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


# ------------------------------------------------------------------ generative mode (LLM) fixtures
@pytest.fixture(scope="session")
def fake_llm_server():
    """A fake OpenAI/Ollama-compatible chat server on 127.0.0.1 (eval/fake_llm_server.py), echoing by default."""
    from eval.fake_llm_server import FakeLLMServer

    with FakeLLMServer() as server:
        yield server


@pytest.fixture()
def fake_llm(fake_llm_server):
    """The session's fake server with no scripted replies and no recorded requests."""
    fake_llm_server.clear()
    yield fake_llm_server
    fake_llm_server.clear()


@pytest.fixture()
def make_llm_assistant(built_assistant: PolicyAssistant):
    """``make(**settings)``: a PolicyAssistant sharing the built index (read-only) with other LLM settings."""
    import copy

    def make(**updates) -> PolicyAssistant:
        clone = copy.copy(built_assistant)
        clone.__dict__.pop("generative", None)
        clone.settings = built_assistant.settings.model_copy(update=updates)
        return clone

    return make


@pytest.fixture()
def generative_assistant(make_llm_assistant, fake_llm) -> PolicyAssistant:
    """LLM_PROVIDER=openai against the fake server over loopback, through langchain_openai.ChatOpenAI."""
    return make_llm_assistant(llm_provider="openai", llm_base_url=fake_llm.base_url, llm_model="fake-echo",
                              llm_timeout_s=20.0)
