"""Backup and restore (issue 10 item 6): ``export FILE.tar.gz`` / ``import FILE.tar.gz``.

Round trip into fresh data folders (real Chroma, USE-m3; and e5-small for the move to another model), the CLI's
merge / --replace / --no-shipped, and tampered archives refused with the corpus unchanged.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.backup import BackupError, Limits, export_corpus, import_corpus
from assistant.service import PolicyAssistant
from assistant.settings import Settings
from ui.cli import app
from ui.provenance import provenance

pytestmark = pytest.mark.model

AMBER_HTML = ("<html><body><h1>琥珀隧道通行规定</h1><p>第一条 为了管理琥珀隧道的通行，制定本规定。</p>"
              "<p>第二条 琥珀隧道夜间限速每小时四十公里，雨天限速每小时三十公里。</p>"
              "<p>第三条 本规定自公布之日起施行。</p></body></html>")
OPAL_TXT = "蛋白石港口管理办法\n\n一、总体要求\n推进蛋白石港口开放。\n二、主要任务\n（一）便利通关。港口实行七乘二十四小时通关。\n（二）降低费用。\n"
QUERIES = ["琥珀隧道夜间限速多少？", "蛋白石港口通关时间", "数据出境安全评估", "外国医生能开诊所吗？"]


def _service(data: Path, model: str = "use-m3") -> PolicyAssistant:
    return PolicyAssistant(Settings(data_dir=data, embedding_model=model, secondary_embedding_model="none",
                                    llm_provider="none", admin_token=None))


def _state(service: PolicyAssistant) -> dict[str, object]:
    snap = service.retriever.refresh()
    return {"docs": {d: (s.meta.model_dump(), s.content_hash, s.clause_count) for d, s in snap.documents.items()},
            "clauses": [(c.clause_id, c.text, c.path, c.label) for c in snap.clauses]}


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[PolicyAssistant, Path]:
    """The shipped corpus plus an .html upload (its original is kept) and a .txt upload, exported."""
    root = tmp_path_factory.mktemp("backup")
    service = _service(root / "a")
    service.ensure_index()
    service.ingest_bytes(AMBER_HTML.encode(), "琥珀.html", doc_id="amber", title="琥珀隧道通行规定", status="现行")
    service.ingest_bytes(OPAL_TXT.encode(), "opal.txt", doc_id="opal", title="蛋白石港口管理办法")
    archive = root / "corpus.tar.gz"
    report = export_corpus(service, archive)
    assert report.documents == 16 and report.originals == 1 and report.with_text == 16
    return service, archive


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}  # type: ignore[union-attr]


def test_the_archive_holds_the_manifest_texts_clauses_and_the_uploaded_original(source) -> None:
    service, archive = source
    members = _members(archive)
    manifest = json.loads(members["manifest.json"])
    assert manifest["format"] == "policy-assistant-backup" and manifest["format_version"] == 1
    assert manifest["embedding_model"] == "use-m3" and manifest["corpus_generation"] == service.store.generation()
    entries = {e["meta"]["doc_id"]: e for e in manifest["documents"]}
    assert entries["fz-plan"]["origin"] == "shipped" and entries["amber"]["origin"] == "uploaded"
    amber = entries["amber"]
    assert amber["meta"]["status"] == "现行" and amber["original_filename"] == "琥珀.html" and amber["added_at"]
    assert members["documents/amber/original"] == AMBER_HTML.encode()
    assert "夜间限速" in members["documents/amber/text.txt"].decode()
    assert entries["opal"]["original"] is None  # a .txt upload is its text
    lines = members["documents/amber/clauses.jsonl"].decode().splitlines()
    assert len(lines) == amber["clauses"] and json.loads(lines[0])["clause_id"].startswith("amber/")


def test_round_trip_into_a_fresh_folder_gives_the_same_corpus_and_search(source, tmp_path: Path) -> None:
    service, archive = source
    target = _service(tmp_path / "b")
    report = import_corpus(target, archive)
    assert len(report.added) == 16 and not (report.replaced or report.unchanged or report.removed or report.notes)
    assert _state(target) == _state(service)
    for doc_id in ("fz-plan", "amber", "opal"):  # origin and added_at survive
        assert provenance(target, doc_id) == provenance(service, doc_id)
    for q in QUERIES:
        assert ([h.clause.clause_id for h in target.search(q, k=5)]
                == [h.clause.clause_id for h in service.search(q, k=5)]), q
    again = import_corpus(target, archive)  # nothing to do the second time
    assert len(again.unchanged) == 16 and not again.added and not again.replaced
    # the restored folder keeps the upload's text and original: its own export carries them
    second = tmp_path / "again.tar.gz"
    assert export_corpus(target, second).originals == 1
    assert _members(second)["documents/amber/original"] == AMBER_HTML.encode()


def test_import_with_another_embedding_model_re_embeds_the_same_clauses(source, tmp_path: Path) -> None:
    service, archive = source
    target = _service(tmp_path / "e5", model="e5-small")
    report = import_corpus(target, archive)
    assert report.embedding_model == target.embedder.spec and len(report.added) == 16
    assert _state(target)["clauses"] == _state(service)["clauses"]
    assert target.search("琥珀隧道夜间限速多少？", k=3)[0].clause.doc_id == "amber"


@pytest.fixture()
def cli(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EMBEDDING_MODEL", "use-m3")
    monkeypatch.setenv("SECONDARY_EMBEDDING_MODEL", "none")
    monkeypatch.setenv("LLM_PROVIDER", "none")
    runner = CliRunner()

    def run(data: Path, *args: str):
        monkeypatch.setenv("POLICY_DATA_DIR", str(data))
        return runner.invoke(app, list(args))

    return run


def test_cli_merge_replace_and_no_shipped(source, cli, tmp_path: Path) -> None:
    service, _ = source
    small = tmp_path / "own.tar.gz"
    res = cli(service.settings.data_dir, "export", str(small), "--no-shipped")
    assert res.exit_code == 0, res.output
    assert "16 documents" in res.stdout and "14 shipped left out" in res.stdout
    assert sorted(n for n in _members(small) if n.endswith("text.txt")) == [
        "documents/amber/text.txt", "documents/opal/text.txt"]
    other = tmp_path / "c"
    note = tmp_path / "note.txt"
    note.write_text("第一条 本地笔记。\n第二条 只在这里。\n", encoding="utf-8")
    assert cli(other, "ingest", str(note), "--doc-id", "local-note").exit_code == 0  # shipped corpus + a note
    res = cli(other, "import", str(small))
    assert res.exit_code == 0, res.output
    assert "2 added, 0 replaced, 14 unchanged, 0 removed" in res.stdout
    res = cli(other, "import", str(small), "--replace", "--dry-run")
    assert "would import" in res.stdout and "1 removed" in res.stdout
    assert "local-note" in cli(other, "docs").stdout
    res = cli(other, "import", str(small), "--replace")
    assert res.exit_code == 0 and "0 added, 0 replaced, 16 unchanged, 1 removed" in res.stdout
    assert _state(_service(other))["clauses"] == _state(service)["clauses"]
    # an empty folder gets exactly the archive (left-out shipped documents from this package)
    res = cli(tmp_path / "d", "import", str(small))
    assert res.exit_code == 0 and "16 added" in res.stdout
    assert _state(_service(tmp_path / "d")) == _state(service)


# ------------------------------------------------------------------------------------------- tampered archives
def _rebuild(members: dict[str, bytes], extra: list[tuple[tarfile.TarInfo, bytes | None]] = ()) -> bytes:  # type: ignore[assignment]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _traversal(members: dict[str, bytes]) -> bytes:
    info = tarfile.TarInfo("../../evil.txt")
    info.size = 4
    return _rebuild(members, [(info, b"evil")])


def _absolute(members: dict[str, bytes]) -> bytes:
    info = tarfile.TarInfo("/tmp/policy-evil.txt")
    info.size = 4
    return _rebuild(members, [(info, b"evil")])


def _symlink(members: dict[str, bytes]) -> bytes:
    info = tarfile.TarInfo("documents/amber/original")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    members = {k: v for k, v in members.items() if k != "documents/amber/original"}
    return _rebuild(members, [(info, None)])


def _truncated(members: dict[str, bytes]) -> bytes:
    whole = _rebuild(members)
    return whole[: len(whole) // 2]


def _no_manifest(members: dict[str, bytes]) -> bytes:
    return _rebuild({k: v for k, v in members.items() if k != "manifest.json"})


def _text_changed(members: dict[str, bytes]) -> bytes:
    text = members["documents/amber/text.txt"].decode().replace("四十", "一百四十")
    return _rebuild({**members, "documents/amber/text.txt": text.encode()})


def _stray_member(members: dict[str, bytes]) -> bytes:
    return _rebuild({**members, "documents/ghost/text.txt": "第一条 幽灵。".encode()})


def _foreign(members: dict[str, bytes]) -> bytes:
    return _rebuild({"manifest.json": b'{"format": "something-else", "documents": []}'})


def _newer(members: dict[str, bytes]) -> bytes:
    manifest = json.loads(members["manifest.json"])
    manifest["format_version"] = 99
    return _rebuild({**members, "manifest.json": json.dumps(manifest).encode()})


def _not_gzip(members: dict[str, bytes]) -> bytes:
    return b"PK\x03\x04 not a tarball"


@pytest.mark.parametrize("tamper,message", [
    (_traversal, "unsafe member name"),
    (_absolute, "unsafe member name"),
    (_symlink, "is a link"),
    (_truncated, "corrupt or truncated"),
    (_no_manifest, "no manifest.json"),
    (_text_changed, "does not match the manifest's SHA-256"),
    (_stray_member, "not in the manifest"),
    (_foreign, "not a policy-assistant backup"),
    (_newer, "newer version"),
    (_not_gzip, "corrupt or truncated"),
])
def test_a_tampered_archive_is_refused_with_the_corpus_unchanged(source, cli, tmp_path: Path, tamper,
                                                                  message: str) -> None:
    service, archive = source
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(tamper(_members(archive)))
    target = tmp_path / "t"
    assert cli(target, "ingest", "--own-only", str(_note(tmp_path))).exit_code == 0
    before = _service(target)
    state, generation = _state(before), before.store.generation()
    res = cli(target, "import", str(bad), "--replace")
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1] and "Traceback" not in res.output
    after = _service(target)
    assert _state(after) == state and after.store.generation() == generation
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/policy-evil.txt").exists()


def _note(tmp_path: Path) -> Path:
    note = tmp_path / "note.txt"
    note.write_text("第一条 本地笔记。\n第二条 只在这里。\n", encoding="utf-8")
    return note


def test_size_limits_are_checked_before_extraction(source, tmp_path: Path) -> None:
    service, archive = source
    with pytest.raises(BackupError, match="the limit is 1000"):
        import_corpus(_service(tmp_path / "x"), archive, limits=Limits(max_member_bytes=1000))
    with pytest.raises(BackupError, match="more than 3 members"):
        import_corpus(_service(tmp_path / "x"), archive, limits=Limits(max_members=3))
    with pytest.raises(BackupError, match="unpacks to more than"):
        import_corpus(_service(tmp_path / "x"), archive, limits=Limits(max_total_bytes=100_000))
    bomb = tmp_path / "bomb.tar.gz"  # a gzip'd tar whose one member claims far more than it compresses to
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("documents/amber/text.txt")
        info.size = 5_000_000
        tar.addfile(info, io.BytesIO(b"\0" * info.size))
    bomb.write_bytes(gzip.compress(buf.getvalue()))
    with pytest.raises(BackupError, match="the limit is 1000000"):
        import_corpus(_service(tmp_path / "x"), bomb, limits=Limits(max_member_bytes=1_000_000))


def test_a_consistently_edited_shipped_text_is_not_restored_as_shipped(source, tmp_path: Path) -> None:
    """An archive whose shipped text was edited (and its hash updated) imports as an upload, never as shipped."""
    import hashlib

    service, archive = source
    members = _members(archive)
    name = "documents/fz-plan/text.txt"
    text = members[name].decode().replace("福州", "榕城", 1).encode()
    manifest = json.loads(members["manifest.json"])
    for entry in manifest["documents"]:
        if entry["meta"]["doc_id"] == "fz-plan":
            entry["text"].update(sha256=hashlib.sha256(text).hexdigest(), size=len(text))
    edited = tmp_path / "edited.tar.gz"
    edited.write_bytes(_rebuild({**members, name: text, "manifest.json": json.dumps(manifest).encode()}))
    target = _service(tmp_path / "e")
    import_corpus(target, edited)
    assert provenance(target, "fz-plan")["origin"] == "uploaded"
    assert provenance(target, "data-security-law")["origin"] == "shipped"


# --------------------------------------------------------------------------------------------------- the API
def test_admin_api_exports_and_imports(source, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from ui.server import create_app

    service, archive = source
    token = "backup-admin-token"
    target = PolicyAssistant(Settings(data_dir=tmp_path / "api", embedding_model="use-m3",
                                      secondary_embedding_model="none", llm_provider="none", admin_token=token))
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(target, with_ui=False)) as client:
        assert client.get("/api/corpus/export").status_code == 401
        upload = {"file": ("corpus.tar.gz", archive.read_bytes(), "application/gzip")}
        assert client.post("/api/corpus/import", files=upload).status_code == 401
        res = client.post("/api/corpus/import", files=upload, headers=auth, params={"replace": "true"})
        assert res.status_code == 200, res.text
        body = res.json()
        assert {"amber", "opal"} <= set(body["added"]) | set(body["replaced"]) and body["embedding_model"] == "use-m3"
        assert client.get("/api/documents/amber").status_code == 200
        bad = {"file": ("corpus.tar.gz", _text_changed(_members(archive)), "application/gzip")}
        res = client.post("/api/corpus/import", files=bad, headers=auth)
        assert res.status_code == 400 and "SHA-256" in res.json()["detail"]
        res = client.post("/api/corpus/import", files={"file": ("x.zip", b"PK", "application/zip")}, headers=auth)
        assert res.status_code == 415
        res = client.get("/api/corpus/export", headers=auth)
        assert res.status_code == 200 and res.headers["content-type"] == "application/gzip"
        assert "attachment" in res.headers["content-disposition"]
        out = tmp_path / "from-api.tar.gz"
        out.write_bytes(res.content)
        names = _members(out)
        assert names["documents/amber/original"] == AMBER_HTML.encode()
        assert len(json.loads(names["manifest.json"])["documents"]) == 16
    assert _state(target)["clauses"] == _state(service)["clauses"]
