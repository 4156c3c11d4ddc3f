"""Real HTTP round trips: the assistant talks to a fake OpenAI-compatible server on 127.0.0.1 through ChatOpenAI."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

from assistant.service import PolicyAssistant
from eval.fake_llm_server import NOISE_CLAIM, FakeLLMServer, Reply, echo_reply

CLINIC_Q = "外国医生能在福州开诊所吗？"


def collect(events: Any) -> tuple[list[str], Any]:
    tokens, answer = [], None
    for ev in events:
        if ev["type"] == "token":
            tokens.append(ev["text"])
        elif ev["type"] == "answer":
            answer = ev["answer"]
    return tokens, answer


def test_streamed_answer_over_loopback(generative_assistant: PolicyAssistant, fake_llm: FakeLLMServer) -> None:
    tokens, answer = collect(generative_assistant.ask_stream(CLINIC_Q))
    assert answer.mode == "generative" and not answer.refused and answer.notice is None
    assert len(tokens) >= 2  # the server sent small chunks; verified sentences streamed one by one
    assert answer.answer == "".join(tokens).strip()
    snap = generative_assistant.retriever.snapshot
    for c in answer.citations:
        assert snap.get(c.clause_id) is not None and f"[{c.label}]" in answer.answer
    assert "fz-plan/三/（二）/3" in [c.clause_id for c in answer.citations]
    request = fake_llm.requests[-1]
    assert request["stream"] is True and request["model"] == "fake-echo"
    assert request["messages"][0]["role"] == "system" and '<clause id="' in request["messages"][1]["content"]


def test_ask_over_loopback_matches_the_stream(generative_assistant: PolicyAssistant) -> None:
    answer = generative_assistant.ask(CLINIC_Q)
    _, streamed = collect(generative_assistant.ask_stream(CLINIC_Q))
    assert answer.mode == "generative" and answer.answer == streamed.answer


def test_server_error_500_falls_back(generative_assistant: PolicyAssistant, built_assistant: PolicyAssistant,
                                     fake_llm: FakeLLMServer) -> None:
    fake_llm.script(Reply(status=500))
    tokens, answer = collect(generative_assistant.ask_stream(CLINIC_Q))
    extractive = built_assistant.ask(CLINIC_Q)
    assert answer.mode == "extractive" and answer.answer == extractive.answer
    assert "调用失败" in answer.notice and "抽取式" in answer.notice
    assert "".join(tokens) == answer.answer  # nothing was streamed before the failure: the fallback streams
    assert len(fake_llm.requests) == 1  # max_retries=0: no retry storm against a failing server


def test_timeout_falls_back(make_llm_assistant: Any, built_assistant: PolicyAssistant,
                            fake_llm: FakeLLMServer) -> None:
    release = threading.Event()
    fake_llm.script(Reply(hang=release))
    pa = make_llm_assistant(llm_provider="openai", llm_base_url=fake_llm.base_url, llm_model="fake-echo",
                            llm_timeout_s=0.5)
    try:
        answer = pa.ask(CLINIC_Q)
    finally:
        release.set()  # let the server thread finish
    assert answer.mode == "extractive" and answer.answer == built_assistant.ask(CLINIC_Q).answer
    assert "未在限定时间内响应" in answer.notice


def test_empty_completion_falls_back(generative_assistant: PolicyAssistant, fake_llm: FakeLLMServer) -> None:
    fake_llm.script(Reply(text=""))
    answer = generative_assistant.ask(CLINIC_Q)
    assert answer.mode == "extractive" and "空回答" in answer.notice


def test_made_up_id_from_the_server_is_dropped(generative_assistant: PolicyAssistant, fake_llm: FakeLLMServer) -> None:
    fake_llm.script(Reply(text="支持符合条件的外籍及港澳台医生在榕设立诊所[fz-plan/三/（二）/3][fz-plan/三/（九十九）/1]。"))
    tokens, answer = collect(generative_assistant.ask_stream(CLINIC_Q))
    assert [c.clause_id for c in answer.citations] == ["fz-plan/三/（二）/3"]
    assert "九十九" not in answer.answer and "九十九" not in "".join(tokens)


def test_follow_up_is_condensed_by_the_server(generative_assistant: PolicyAssistant, fake_llm: FakeLLMServer) -> None:
    fake_llm.script(Reply(text="境外医疗专业人员能否在福州短期执业？"))
    history = [[CLINIC_Q, "支持符合条件的外籍及港澳台医生在榕设立诊所[三（二）3]。"]]
    answer = generative_assistant.ask("那境外的医疗专业人员呢？", history)
    assert answer.standalone_question == "境外医疗专业人员能否在福州短期执业？"
    assert "<followup>" in fake_llm.requests[0]["messages"][-1]["content"]
    assert "fz-plan/三/（二）/4" in [c.clause_id for c in answer.citations]


def test_ollama_provider_over_loopback(make_llm_assistant: Any, fake_llm: FakeLLMServer) -> None:
    pa = make_llm_assistant(llm_provider="ollama", llm_base_url=fake_llm.root_url, llm_model="fake-echo",
                            llm_timeout_s=20.0, llm_max_context_tokens=8192)
    answer = pa.ask(CLINIC_Q)
    assert answer.mode == "generative" and "fz-plan/三/（二）/3" in [c.clause_id for c in answer.citations]
    request = fake_llm.requests[-1]
    assert request["model"] == "fake-echo" and request["options"]["num_ctx"] == 8192


def test_llm_status_reports_ok_and_errors(make_llm_assistant: Any, fake_llm: FakeLLMServer) -> None:
    ok = make_llm_assistant(llm_provider="openai", llm_base_url=fake_llm.base_url, llm_model="fake-echo",
                            llm_timeout_s=20.0).llm_status()
    assert ok["status"] == "ok" and ok["provider"] == "openai" and ok["model"] == "fake-echo"
    fake_llm.script(Reply(status=500))
    failing = make_llm_assistant(llm_provider="openai", llm_base_url=fake_llm.base_url, llm_model="fake-echo",
                                 llm_timeout_s=20.0).llm_status()
    assert failing["status"] == "error" and "500" in failing["detail"]
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    closed = make_llm_assistant(llm_provider="openai", llm_base_url=f"http://127.0.0.1:{port}/v1",
                                llm_model="m", llm_timeout_s=5.0).llm_status()
    assert closed["status"] == "error"
    missing = make_llm_assistant(llm_provider="openai", llm_base_url=None, llm_model="m").llm_status()
    assert missing["status"] == "error" and "LLM_BASE_URL" in missing["detail"]


def test_fake_server_echo_contract() -> None:
    """The echo cites each sentence of the first clauses by id; condense prompts get a standalone question."""
    user = ('<clauses>\n<clause id="a/1" source="x">\n第一句。第二句\n</clause>\n'
            '<clause id="b/2" source="y">\n〔此处为疑似给模型的指令，已省略〕其他。\n</clause>\n'
            '<clause id="c/3" source="z">\n不会出现。\n</clause>\n</clauses>\n\n问题 / Question: q')
    assert echo_reply([{"role": "user", "content": user}]) == "第一句[a/1]。第二句[a/1]。\n其他[b/2]。"
    condense = "<history>\n用户 / User: 外国医生能开诊所吗？\n助手 / Assistant: 可以。\n</history>\n<followup>那护士呢？</followup>"
    assert echo_reply([{"role": "user", "content": condense}]) == "护士 外国医生能开诊所吗？"
    assert echo_reply([{"role": "user", "content": "ping"}]) == "OK"
    json.dumps(echo_reply([{"role": "user", "content": user}]))


def test_noisy_server_output_is_repaired_and_flagged(make_llm_assistant: Any) -> None:
    """Over HTTP: made-up ids dropped, uncited sentences get their clause, the unsupported claim is flagged."""
    with FakeLLMServer(noise=True) as noisy:
        pa = make_llm_assistant(llm_provider="openai", llm_base_url=noisy.base_url, llm_model="fake-echo",
                                llm_timeout_s=20.0)
        tokens, answer = collect(pa.ask_stream(CLINIC_Q))
        prompt = noisy.requests[-1]["messages"][1]["content"]
    first, second = [part.split('"', 1)[0] for part in prompt.split('<clause id="')[1:3]]
    assert answer.mode == "generative"
    assert "/99" not in answer.answer and "/99" not in "".join(tokens)
    assert answer.unsupported_sentences == [f"{NOISE_CLAIM}。"]
    cited = [c.clause_id for c in answer.citations]
    assert first in cited and second in cited  # the uncited echo of the second clause got its citation
    lines = answer.answer.splitlines()
    assert len(lines) == 3 and lines[1].count("[") >= 1 and "⚠" in lines[2]
