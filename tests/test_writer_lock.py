"""One writer per embedded data folder (issue 10): a running server holds it; a second writer fails with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from servers import free_port

from assistant.service import PolicyAssistant
from assistant.settings import Settings
from assistant.writer import WriterLock
from ui.server import create_app


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POLICY_DATA_DIR": str(data), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ui.cli", *args], env=env, capture_output=True, text=True,
                          timeout=180)


def test_the_lock_is_reentrant_in_one_process_and_held_until_released(tmp_path) -> None:
    lock = WriterLock(tmp_path / "data" / "writer.lock")
    lock.hold()
    with lock, lock:  # writes inside a holding process nest
        pass
    probe = f"""
import sys
from pathlib import Path
from assistant.writer import WriterLock, WriterBusyError
try:
    with WriterLock(Path({str(tmp_path / 'data' / 'writer.lock')!r})):
        print("acquired")
except WriterBusyError as exc:
    print("busy:", exc)
"""
    run = lambda: subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,  # noqa: E731
                                 timeout=60).stdout
    out = run()
    assert out.startswith("busy:") and f"process {os.getpid()}" in out and "CHROMA_HOST" in out
    lock.release_hold()
    assert run().strip() == "acquired"


def test_no_file_lock_in_server_mode(tmp_path) -> None:
    with WriterLock(None), WriterLock(None):
        pass
    assert not list(tmp_path.iterdir())


@pytest.mark.model
def test_a_running_server_is_the_only_writer_of_its_folder(built_assistant: PolicyAssistant, tmp_path) -> None:
    from servers import serve

    data = built_assistant.settings.data_dir
    note = tmp_path / "note.txt"
    note.write_text("第一条 这是一份测试文件，不应写入正在服务的数据目录。\n", encoding="utf-8")
    with serve(create_app(built_assistant, with_ui=False)):
        ingest = _cli(data, "ingest", str(note))
        assert ingest.returncode == 2, ingest.stderr
        line = ingest.stderr.strip().splitlines()[-1]
        assert line.startswith("error: the data folder") and "in use by process" in line
        assert "Traceback" not in ingest.stderr

        second = _cli(data, "serve", "--port", str(free_port()))
        assert second.returncode == 2 and "in use by process" in second.stderr

        search = _cli(data, "search", "数据出境安全评估", "--json")  # reading needs no lock
        assert search.returncode == 0, search.stderr
        assert "clause_id" in search.stdout

    # the server stopped: the folder is free again, and nothing was written meanwhile
    remove = _cli(data, "remove", "no-such-document")
    assert remove.returncode != 0 and "in use" not in remove.stderr
    assert "note" not in {d.meta.doc_id for d in built_assistant.documents()}


def test_settings_choose_the_lock(tmp_path) -> None:
    embedded = PolicyAssistant(Settings(data_dir=tmp_path))
    server = PolicyAssistant(Settings(data_dir=tmp_path, chroma_host="127.0.0.1"))
    assert embedded._write_lock.path == tmp_path / "writer.lock"
    assert server._write_lock.path is None


def test_an_empty_data_dir_variable_means_the_default_folder(monkeypatch) -> None:
    from assistant.settings import default_data_dir

    monkeypatch.setenv("POLICY_DATA_DIR", "")
    assert Settings().data_dir == default_data_dir()
    monkeypatch.setenv("POLICY_DATA_DIR", "  ")
    assert Settings().data_dir == default_data_dir()
