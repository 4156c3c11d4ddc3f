"""The soak / hostile-request script reports what it sees (a short run; figures live in the README)."""

from __future__ import annotations

from servers import serve

from eval.soak import hostile, hostile_cases, soak
from ui.server import create_app


def test_soak_and_hostile_runs_count_every_request_and_find_no_server_errors(built_assistant) -> None:
    with serve(create_app(built_assistant, with_ui=True)) as base:
        s = soak(base, clients=4, seconds=3)
        n = len(hostile_cases())
        h = hostile(base, requests=n, clients=4)
    assert s["requests"] > 0 and s["answered_2xx"] + s["overload_503"] + s["other_4xx"] + s["dropped"] \
        + s["server_errors_5xx"] == s["requests"]
    assert s["server_errors_5xx"] == 0 and s["dropped"] == 0 and s["p50_ms"] is not None
    assert h["requests"] == n and set(h["cases"]) == {name for name, _ in hostile_cases()}
    assert h["server_errors_5xx"] == 0 and h["dropped"] == 0, h["cases"]
    assert h["cases"]["foreign Host"] == {"400": 1}
    assert h["cases"]["upload without token"] in ({"401": 1}, {"403": 1})
