"""confidential_text = "seal" (README "Privacy"): a CONFIDENTIAL note's text is kept in
its record encrypted under the vault's key, so `get --reveal` shows it while no file
under the data dir, no `sql` result, no export and no `get` without --reveal holds it.
On real parts: real `ccc-watch` processes, real redb, SQLite and DuckDB files, a real
daemon, real key files; every check greps raw bytes for a marker word per channel.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import cli
from daemon_harness import Daemon, wait_until
from records import searchable
from test_privacy import CHANNELS, files_under, leaked, leaks_in, markers, note_text

from ccc_watch.index.indexer import Indexer
from ccc_watch.index.policy import IndexPolicy
from ccc_watch.index.pool import PARALLEL_MIN_FILES
from ccc_watch.index.seal import Sealer, key_id
from ccc_watch.keys import new_key_file, parse_key
from ccc_watch.store import codec, open_store

CONFIDENTIAL = "classification: CONFIDENTIAL\n"
BOUND = 15.0  # README "Privacy": the scrub of a note made private, on a small vault
TABLES = ("notes", "links", "tags", "properties", "tasks", "events")


@pytest.fixture
def env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The child environment, sealing, with no keyring backend or systemd credential of
    the machine's: the key comes from the key file a test names, or from nowhere."""
    env = dict(env)
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    env["CCC_WATCH_CONFIDENTIAL_TEXT"] = "seal"
    env.pop("CREDENTIALS_DIRECTORY", None)
    return env


def make_key(tmp_path: Path, name: str) -> Path:
    """A new key file outside the vault and the data dir."""
    path = tmp_path / "keys" / f"{name}.key"
    path.parent.mkdir(exist_ok=True)
    new_key_file(path)
    return path


def the_key(path: Path) -> bytes:
    return parse_key(path.read_text(), str(path))


def run(
    env: dict[str, str], vault: Path, data: Path, *args: str, key: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`ccc-watch ARGS` with the key file `key` (or none)."""
    env = dict(env)
    if key is not None:
        env["CCC_WATCH_KEY_FILE"] = str(key)
    return cli(env, vault, data, *args)


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def one_line_error(r: subprocess.CompletedProcess[str], code: int) -> str:
    """The one line a failed command printed, after checking the exit code and that no
    traceback came with it."""
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("ccc-watch: ")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def revealed(env: dict[str, str], vault: Path, data: Path, path: str, key: Path) -> Any:
    return json.loads(ok(run(env, vault, data, "get", "--reveal", path, key=key)))


def vault_of(tmp_path: Path, notes: dict[str, str], fillers: int = 20) -> Path:
    vault = tmp_path / "vault"
    vault.mkdir()
    for i in range(fillers):
        (vault / f"filler {i:02d}.md").write_text(f"# filler {i}\n" + "words " * 100)
    for name, text in notes.items():
        (vault / name).parent.mkdir(parents=True, exist_ok=True)
        (vault / name).write_text(text)
    return vault


def sealed_records(data: Path, backend: str = "redb") -> dict[str, dict[str, Any]]:
    with open_store(data, backend=backend, readonly=True) as store:
        return {r["path"]: r for r in store.records() if r["classification"] == "CONFIDENTIAL"}


# --- what is written, what is shown -------------------------------------------------


@pytest.mark.parametrize("backend", ["redb", "sqlite"])
def test_sealed_text_is_in_no_file_nor_query_and_reveal_shows_every_channel(
    tmp_path: Path, env: dict[str, str], backend: str
) -> None:
    """A CONFIDENTIAL note's marker words (body, heading, frontmatter title, alias, tags,
    inline tag, task, link target, alias and heading, a property's key and value) are in
    no file under the data dir, no `sql` result over every table, no Parquet export, no
    `dump` and no `get`; `get --reveal` gives back the record a fresh index of the note
    makes, every channel in place. A PUBLIC note beside it shows the greps can see."""
    mc, mp, ms = markers("c"), markers("p"), markers("s")
    vault = vault_of(tmp_path, {
        "sub/c.md": note_text(mc, CONFIDENTIAL),
        "p.md": note_text(mp, "classification: PUBLIC\n"),
        "s.md": note_text(ms, "classification: SECRET\n"),
    })  # fmt: skip
    data, key = tmp_path / "data", make_key(tmp_path, "k")
    env["CCC_WATCH_BACKEND"] = backend
    ok(run(env, vault, data, "rebuild", key=key))

    assert leaks_in(data, mc) is None and leaks_in(data, ms) is None
    assert set(CHANNELS) <= {c for cs in (leaks_in(data, mp) or {}).values() for c in cs}
    shown = ""
    for table in TABLES:
        shown += ok(run(env, vault, data, "sql", f"SELECT * FROM {table}", "--format", "json"))
    out = tmp_path / "export"
    ok(run(env, vault, data, "export", "--parquet", str(out)))
    exported = b"".join(p.read_bytes() for p in out.iterdir())
    dumped = ok(run(env, vault, data, "dump"))
    got = ok(run(env, vault, data, "get", "sub/c.md"))
    for text in (shown, exported.decode(errors="replace"), dumped, got):
        assert leaked(text.encode(), mc) == [] and leaked(text.encode(), ms) == []
    assert set(leaked(shown.encode(), mp)) == set(CHANNELS)
    assert "sealed" not in shown and "AES-256-GCM" not in shown  # no ciphertext either
    assert json.loads(got)["sealed"]["key_id"] == key_id(the_key(key))

    rec = revealed(env, vault, data, "sub/c.md", key)
    assert set(leaked(json.dumps(rec).encode(), mc)) == set(CHANNELS)
    with open_store(data, backend=backend, readonly=True) as store:
        vault_id = str(store.meta["vault_id"])
    keep_all = IndexPolicy(private_classifications=frozenset())
    whole = Indexer(vault, vault_id, keep_all).index("sub/c.md", previous_id=rec["id"]).record
    assert whole is not None
    assert {k: v for k, v in rec.items() if k != "indexed_at"} == {
        k: v for k, v in whole.items() if k != "indexed_at"
    }
    # A SECRET note is never sealed: nothing to reveal.
    secret = revealed(env, vault, data, "s.md", key)
    assert "sealed" not in secret and leaked(json.dumps(secret).encode(), ms) == []
    # The key itself is in no file either.
    raw = the_key(key)
    for blob in files_under(data).values():
        assert raw not in blob and raw.hex().encode() not in blob


# --- failing closed -------------------------------------------------------------------


def test_without_a_key_nothing_is_indexed_and_no_text_is_shown(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """seal with no key: `rebuild`, `scan`, `run` and `verify --deep` stop before
    indexing, one line each, exit 78, and write no store; `get --reveal` with no key is
    78, with another key 1; plain `get` needs none. Never a traceback, never the text."""
    mc = markers("c")
    vault = vault_of(tmp_path, {"c.md": note_text(mc, CONFIDENTIAL)})
    data = tmp_path / "data"
    line = one_line_error(run(env, vault, data, "rebuild"), 78)
    assert "no key for vault" in line and "--key-file" in line and "init" in line
    assert not any(p.name.startswith("index.") for p in files_under(data)), files_under(data)
    assert leaks_in(data, mc) is None

    key, other = make_key(tmp_path, "k"), make_key(tmp_path, "other")
    ok(run(env, vault, data, "rebuild", key=key))
    before = sealed_records(data)["c.md"]
    (vault / "c.md").write_text(note_text(markers("c2"), CONFIDENTIAL))
    for args in (("scan",), ("run",), ("verify", "--deep")):
        r = run(env, vault, data, *args)
        assert "no key for vault" in one_line_error(r, 78), args
    assert sealed_records(data)["c.md"] == before  # nothing was indexed meanwhile
    (vault / "c.md").write_text(note_text(mc, CONFIDENTIAL))

    assert "no key for vault" in one_line_error(
        run(env, vault, data, "get", "--reveal", "c.md"), 78
    )
    r = run(env, vault, data, "get", "--reveal", "c.md", key=other)
    line = one_line_error(r, 1)
    assert "sealed under key" in line and key_id(the_key(key)) in line
    assert leaked((r.stdout + r.stderr).encode(), mc) == [] and r.stdout == ""
    assert json.loads(ok(run(env, vault, data, "get", "c.md")))["body"] is None


# --- the daemon ----------------------------------------------------------------------


class Watch:
    """Greps every file under the data dir for marker words every 50 ms, for as long as
    it runs: a marker that appears even for a moment is caught."""

    def __init__(self, data: Path, words: list[dict[str, str]]) -> None:
        self.data, self.words = data, words
        self.found: list[tuple[str, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for p in list(self.data.rglob("*")) if self.data.exists() else []:
                try:
                    blob = searchable(p.read_bytes()) if p.is_file() else b""
                except OSError:
                    continue
                for m in self.words:
                    self.found += [(p.name, c) for c in leaked(blob, m)]
            time.sleep(0.05)

    def close(self) -> list[tuple[str, str]]:
        self.stop.set()
        self.thread.join()
        return self.found


@pytest.fixture
def sealing_daemon(tmp_path: Path, env: dict[str, str]) -> Iterator[Daemon]:
    key = make_key(tmp_path, "k")
    vault = vault_of(tmp_path, {}, fillers=100)
    d = Daemon(vault, tmp_path / "data", tmp_path / "daemon.log")
    d.env.update(
        PYTHON_KEYRING_BACKEND=env["PYTHON_KEYRING_BACKEND"],
        CCC_WATCH_CONFIDENTIAL_TEXT="seal",
        CCC_WATCH_KEY_FILE=str(key),
    )
    d.env.pop("CREDENTIALS_DIRECTORY", None)
    yield d
    if d.proc is not None:
        d.proc.kill()
        d.proc.wait()


def _reveal(d: Daemon, path: str) -> dict[str, Any] | None:
    r = d.cli("get", "--reveal", path)
    return json.loads(r.stdout) if r.returncode == 0 else None


@pytest.mark.parametrize("mode", ["live", "stopped"])
def test_a_daemon_seals_through_edits_renames_and_a_note_made_confidential(
    sealing_daemon: Daemon, mode: str
) -> None:
    """A running daemon with seal: a CONFIDENTIAL note edited, then renamed (seen live,
    or while the daemon was stopped: then found by content and re-sealed for the id it
    keeps), never has a marker in any file under the data dir, even for a moment, and
    `get --reveal` opens it at its new path; an INTERNAL note made CONFIDENTIAL has its
    old text scrubbed within the bound and its new text sealed. `verify --deep` is
    clean at the end, and the key is in no file and no log line."""
    d = sealing_daemon
    vault, data = d.vault, d.data
    ma, ma2, mb = markers("a"), markers("a2"), markers("b")
    (vault / "notes").mkdir()  # watched from the start: the rename is one move event
    (vault / "a.md").write_text(note_text(ma, CONFIDENTIAL))
    (vault / "b.md").write_text(note_text(mb))  # INTERNAL: its text is in the files
    watch = Watch(data, [ma, ma2])
    try:
        d.start()
        wait_until(lambda: "mirror.duckdb" in (leaks_in(data, mb) or {}), "b.md mirrored")
        first = _reveal(d, "a.md")
        assert first is not None and set(leaked(json.dumps(first).encode(), ma)) == set(CHANNELS)

        (vault / "a.md").write_text(note_text(ma2, CONFIDENTIAL))
        wait_until(lambda: ma2["body"] in str((_reveal(d, "a.md") or {}).get("body")), "edit")
        if mode == "stopped":
            assert d.stop() == 0
        os.rename(vault / "a.md", vault / "notes" / "renamed.md")
        if mode == "stopped":
            d.start()
        wait_until(lambda: _reveal(d, "notes/renamed.md") is not None, "the rename stored")
        moved = _reveal(d, "notes/renamed.md")
        assert moved is not None and moved["id"] == first["id"]
        assert set(leaked(json.dumps(moved).encode(), ma2)) == set(CHANNELS)

        (vault / "b.md").write_text(note_text(mb, CONFIDENTIAL))
        wait_until(lambda: leaks_in(data, mb) is None, "b.md's old text scrubbed", BOUND)
        made = _reveal(d, "b.md")
        assert made is not None and set(leaked(json.dumps(made).encode(), mb)) == set(CHANNELS)
        r = d.cli("verify", "--deep")
        assert r.returncode == 0, r.stdout + r.stderr
        assert d.stop() == 0
    finally:
        found = watch.close()
    assert found == [], found
    assert leaks_in(data, mb) is None
    key = the_key(Path(d.env["CCC_WATCH_KEY_FILE"]))
    logs = d.log.read_bytes() + b"".join(files_under(data).values())
    assert key not in logs and key.hex().encode() not in logs


# --- keys -------------------------------------------------------------------------------


def test_a_new_key_reseals_every_note_at_the_next_scan_and_rebuild(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """Losing the key loses no note: with a new key, `scan` (the policy's fingerprint
    holds the key id) re-seals every CONFIDENTIAL note, and so does `rebuild`; each
    then opens with the new key only, with all its text."""
    notes = {f"c{i:02d}.md": markers(f"c{i:02d}") for i in range(12)}
    # Over PARALLEL_MIN_FILES: rebuild and scan index in worker processes (forked).
    texts = {n: note_text(m, CONFIDENTIAL) for n, m in notes.items()}
    vault = vault_of(tmp_path, texts, fillers=PARALLEL_MIN_FILES)
    data = tmp_path / "data"
    first, second, third = (make_key(tmp_path, n) for n in ("first", "second", "third"))
    ok(run(env, vault, data, "rebuild", key=first))
    assert {r["sealed"]["key_id"] for r in sealed_records(data).values()} == {
        key_id(the_key(first))
    }
    first.unlink()  # lost

    for command, key in (("scan", second), ("rebuild", third)):
        ok(run(env, vault, data, command, key=key))
        records = sealed_records(data)
        assert set(records) == set(notes)
        assert {r["sealed"]["key_id"] for r in records.values()} == {key_id(the_key(key))}
        for name, m in notes.items():
            rec = revealed(env, vault, data, name, key)
            assert set(leaked(json.dumps(rec).encode(), m)) == set(CHANNELS), (command, name)
        old = second if key is third else make_key(tmp_path, "unrelated")
        one_line_error(run(env, vault, data, "get", "--reveal", "c00.md", key=old), 1)
        assert ok(run(env, vault, data, "verify", "--deep", key=key)).endswith("clean\n")
    for m in notes.values():
        assert leaks_in(data, m) is None


# --- verify -----------------------------------------------------------------------------


def _tamper(data: Path, path: str, change: Any) -> None:
    """Rewrite one stored record's bytes in place, past the store's own comparisons."""
    with open_store(data) as store:
        rec = store.get(path)
        assert rec is not None
        change(rec)
        with store.backend.writing() as tx:
            tx.put("records", path, codec.encode(rec))


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_verify_deep_is_clean_with_seal_and_catches_sealed_text_tampered_with(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """`verify --deep` opens every sealed field and compares its text with a fresh index
    of the file (the nonce differs on every sealing, the text must not): clean after a
    rebuild and after edits; a flipped ciphertext bit, a sealed field moved onto another
    record, a digest changed, and text sealed correctly but not the file's are each a
    difference naming the note, exit 1, without its text; `get --reveal` of a damaged
    one is one line, exit 65."""
    notes = {f"c{i}.md": markers(f"c{i}") for i in range(5)}
    vault = vault_of(tmp_path, {n: note_text(m, CONFIDENTIAL) for n, m in notes.items()})
    data, key = tmp_path / "data", make_key(tmp_path, "k")
    ok(run(env, vault, data, "rebuild", key=key))
    assert ok(run(env, vault, data, "verify", "--deep", key=key)).endswith("verify: clean\n")
    (vault / "c4.md").write_text(note_text(notes["c4.md"], CONFIDENTIAL) + "\nmore words\n")
    ok(run(env, vault, data, "scan", key=key))
    assert ok(run(env, vault, data, "verify", "--deep", key=key)).endswith("verify: clean\n")

    records = sealed_records(data)
    _tamper(data, "c0.md", lambda r: r["sealed"].update(data=_flip(r["sealed"]["data"])))
    _tamper(data, "c1.md", lambda r: r.update(sealed=records["c2.md"]["sealed"]))
    _tamper(data, "c2.md", lambda r: r["sealed"].update(digest="0" * 32))
    sealer = Sealer(the_key(key))
    c3 = records["c3.md"]
    other = sealer.seal({"body": "another text"}, c3["id"], c3["blake3"])  # opens, but stale
    _tamper(data, "c3.md", lambda r: r.update(sealed=other))
    r = run(env, vault, data, "verify", "--deep", key=key)
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    for name in ("c0.md", "c1.md", "c2.md"):
        assert any(ln.startswith(f"store: sealed-unreadable: {name}: ") for ln in lines), lines
    assert any(ln.startswith("store: stale-record: c3.md: sealed text differs in") for ln in lines)
    assert not any("c4.md" in ln for ln in lines)
    assert lines[-1] == "verify: 4 differences", lines
    for m in notes.values():
        assert leaked(r.stdout.encode(), m) == []

    r = run(env, vault, data, "get", "--reveal", "c0.md", key=key)
    assert "altered or damaged" in one_line_error(r, 65) and r.stdout == ""
    assert leaked(r.stderr.encode(), notes["c0.md"]) == []
    # A rebuild recreates every sealed field from the vault.
    ok(run(env, vault, data, "rebuild", key=key))
    assert ok(run(env, vault, data, "verify", "--deep", key=key)).endswith("verify: clean\n")


def test_a_note_sealed_again_unchanged_is_no_change(tmp_path: Path, env: dict[str, str]) -> None:
    """Every sealing has a fresh nonce, yet a note indexed again with the same text and
    key is no change: the store writes nothing and logs no changelog entry, a rebuild
    counts it unchanged; a change of its text, or of the key, is a change."""
    mc = markers("c")
    vault = vault_of(tmp_path, {"c.md": note_text(mc, CONFIDENTIAL)}, fillers=3)
    key = the_key(make_key(tmp_path, "k"))
    policy = IndexPolicy(confidential_text="seal").keyed_for("v", lambda _: key)
    with open_store(tmp_path / "data") as store:
        indexer = Indexer(vault, str(store.meta["vault_id"]), policy)
        first, again = (indexer.index("c.md").record for _ in range(2))
        assert first is not None and again is not None
        assert first["sealed"]["nonce"] != again["sealed"]["nonce"]
        assert store.upsert(first) is not None
        assert store.upsert(again) is None and store.head() == 1
        other = IndexPolicy(confidential_text="seal").keyed_for("v", lambda _: os.urandom(32))
        rekeyed = Indexer(vault, indexer.vault_id, other).index("c.md").record
        assert rekeyed is not None and store.upsert(rekeyed) is not None
        (vault / "c.md").write_text(note_text(mc, CONFIDENTIAL).replace("text", "texts"))
        assert store.upsert(indexer.index("c.md").record) is not None

    data, key_path = tmp_path / "data2", make_key(tmp_path, "k2")
    ok(run(env, vault, data, "rebuild", key=key_path))
    report = json.loads(ok(run(env, vault, data, "rebuild", "--json", key=key_path)))
    assert (report["changed"], report["unchanged"]) == (0, 4), report


def test_sighup_to_seal_needs_the_key_and_then_reseals_every_note(
    sealing_daemon: Daemon, tmp_path: Path
) -> None:
    """A daemon indexing under `drop` told by SIGHUP to `seal` with no key keeps its
    settings (an ERROR line, no change); with a key it takes them, and the policy change
    seals every CONFIDENTIAL note at the reconcile the reload asks for."""
    d = sealing_daemon
    key = Path(d.env.pop("CCC_WATCH_KEY_FILE"))
    del d.env["CCC_WATCH_CONFIDENTIAL_TEXT"]  # from the config file alone
    conf = tmp_path / "config.toml"
    conf.write_text('confidential_text = "drop"\n')
    d.env["CCC_WATCH_CONFIG"] = str(conf)
    d.run_args = ["--log-file", str(tmp_path / "file.log")]
    notes = {f"c{i}.md": markers(f"c{i}") for i in range(3)}
    for name, m in notes.items():
        (d.vault / name).write_text(note_text(m, CONFIDENTIAL))
    for i in range(PARALLEL_MIN_FILES):  # the reload's reconcile spawns worker processes
        (d.vault / f"more {i:03d}.md").write_text(f"# more {i}\n")
    d.start()
    wait_until(lambda: set(notes) <= set(d.records()), "the notes indexed")
    assert not any("sealed" in r for r in d.records().values())

    def logged(text: str) -> bool:
        log = tmp_path / "file.log"
        return log.exists() and text in log.read_text()

    assert d.proc is not None
    conf.write_text('confidential_text = "seal"\n')
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: logged("configuration not reloaded"), "the reload refused")
    assert d.status()["state"] == "watching"
    assert not any("sealed" in r for r in d.records().values())

    conf.write_text(f'confidential_text = "seal"\nkey_file = "{key}"\n')
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: all("sealed" in d.records()[n] for n in notes), "every note sealed", BOUND)
    for name, m in notes.items():
        rec = _reveal(d, name)
        assert rec is not None and set(leaked(json.dumps(rec).encode(), m)) == set(CHANNELS)
        assert leaks_in(d.data, m) is None
    assert d.stop() == 0
