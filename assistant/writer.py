"""One writer per embedded data folder.

The embedded Chroma client (``PersistentClient``) is one process's store: a second process writing the same
folder would write beside a running server, which never sees the change, and its start-up repair could delete
records another process is in the middle of committing. :class:`WriterLock` serialises writes between threads of
one process and, in embedded mode, between processes with a file lock (``filelock``) in the data folder.

A server (``serve``, or any app made by ``ui.server.create_app``) *holds* the lock for its lifetime, so a second
server or an ``ingest``/``remove``/``import`` on the same folder fails at once with :class:`WriterBusyError`, whose
message says who holds it and what to do instead. Read-only commands (``search``, ``ask``, ``docs``, ``show``) never
need it. In server mode (``CHROMA_HOST``) there is no file lock: processes on several machines share one Chroma
server, and writes are the single-writer role described in the README.

Usage::

    lock = WriterLock(Path("/data/policy-assistant/writer.lock"))
    with lock:          # raises WriterBusyError when another process holds the folder
        ...             # write
    lock.hold()         # keep it until release_hold() (a server's lifetime)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

__all__ = ["WriterLock", "WriterBusyError"]


class WriterBusyError(RuntimeError):
    """Another process holds the data folder's writer lock."""


class WriterLock:
    """A re-entrant writer lock: a thread lock, plus a cross-process file lock when ``path`` is given.

    Args:
        path: the lock file (embedded mode), or None for the thread lock alone (server mode).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._thread = threading.RLock()
        self._file = (FileLock(str(path), timeout=0, thread_local=False, is_singleton=True)
                      if path is not None else None)
        self._held = False

    def __enter__(self) -> WriterLock:
        self._thread.acquire()
        try:
            self._acquire_file()
        except BaseException:
            self._thread.release()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._file is not None:
                self._file.release()
        finally:
            self._thread.release()

    def hold(self) -> None:
        """Take the folder for this process until :meth:`release_hold` (a server's lifetime)."""
        if self._held:
            return
        self._acquire_file()
        self._held = True

    def release_hold(self) -> None:
        """Give back what :meth:`hold` took."""
        if self._held and self._file is not None:
            self._file.release()
        self._held = False

    def _acquire_file(self) -> None:
        if self._file is None:
            return
        assert self.path is not None
        first = not self._file.is_locked
        if first:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._file.acquire(timeout=0)
        except Timeout:
            raise WriterBusyError(self._busy_message()) from None
        if first:
            self._write_holder()

    def _holder_path(self) -> Path:
        assert self.path is not None
        return self.path.with_suffix(".json")

    def _write_holder(self) -> None:
        info = {"pid": os.getpid(), "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:200],
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            self._holder_path().write_text(json.dumps(info, ensure_ascii=False), encoding="utf-8")
        except OSError:
            pass  # the holder note is a courtesy for the message; the lock itself is what counts

    def _busy_message(self) -> str:
        who = "another process"
        try:
            info = json.loads(self._holder_path().read_text(encoding="utf-8"))
            who = f"process {int(info['pid'])} ({str(info.get('command') or '?')[:40]}, since {info.get('since', '?')})"
        except (OSError, ValueError, KeyError, TypeError):
            pass
        folder = self.path.parent if self.path is not None else "?"
        return (f"the data folder {folder} is in use by {who}: add or remove documents through that server "
                "(POST /api/documents, 管理 tab) or stop it; several processes need CHROMA_HOST")
