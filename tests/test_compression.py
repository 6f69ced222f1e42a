"""Compressed stored values: ccc_watch._redb.compress/decompress, the codec's choice of
form, and what a store does with compressed values written before, beside and after
plain ones, and with a damaged one (a damaged record, never a crash).

Both backends store the codec's bytes, so the store cases run on redb and SQLite.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from records import make_record, searchable

from ccc_watch import _redb
from ccc_watch.changes.rebuild import _fingerprint
from ccc_watch.errors import StoreCorruptError
from ccc_watch.history.chain import verify_store
from ccc_watch.store import Upsert, codec, open_store
from ccc_watch.store.chain import link

MAGIC = _redb.ZSTD_MAGIC


@pytest.fixture(params=["redb", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def uncompressed() -> Iterator[None]:
    """The codec as it was before compression: every value stored as JSON."""
    saved = codec.COMPRESS_AT
    codec.COMPRESS_AT = 1 << 62
    try:
        yield
    finally:
        codec.COMPRESS_AT = saved


def big_record(i: int) -> dict[str, Any]:
    return make_record(i, f"note {i} " + "words of the body " * 40)


# --- the extension's functions ------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"x", b'{"a":1}', bytes(range(256)) * 40, b"\x28\xb5\x2f\xfd" * 9, b"a" * 3_000_000],
)
def test_decompress_gives_back_what_compress_took(data: bytes) -> None:
    frame = _redb.compress(data)
    assert frame[:4] == MAGIC
    assert _redb.decompress(frame) == data
    for level in (1, 19, -5):
        assert _redb.decompress(_redb.compress(data, level)) == data


# A SECRET note's record as compressed by the first ccc-watch that compressed (487 bytes
# of JSON in 81): nearly all of it refers back into the dictionary built into the
# extension, so it reads back only while that dictionary stays byte for byte the same.
STORED_FRAME = bytes.fromhex(
    "28b52ffd64e7001d0200686162782e353261336e756c6c7d110086000fe57403404fd42c82dd9cc122a0"
    "84980e0e011dc49eb19bdc6c06001780aca1b819614cb899b20c01cdb09c84460061103d28ee0a"
)


def test_a_value_stored_by_an_earlier_version_reads_back() -> None:
    """Stored frames depend on the dictionary: it may never change."""
    rec = codec.decode(STORED_FRAME)
    assert rec["path"] == "a.md" and rec["blake3"] == "ab" * 32
    assert rec["classification"] == "SECRET" and rec["mime"] == "text/markdown"
    assert len(codec.canonical(rec)) == 487


def test_a_record_compresses_to_a_fraction_of_its_json() -> None:
    """The dictionary of record shapes does its work on a record of a few hundred bytes:
    the gain the codec counts on (bench/store_size.py measures it on whole vaults)."""
    raw = codec.canonical(big_record(1))
    assert len(_redb.compress(raw)) < len(raw) / 3


def test_every_damage_to_a_frame_is_refused_or_harmless() -> None:
    """A flipped bit anywhere, a frame cut short, bytes after it, no frame at all: a
    ValueError, never a crash and never other bytes (a bit the format ignores gives the
    same content back)."""
    data = codec.canonical(big_record(2))
    frame = _redb.compress(data)
    for at in range(len(frame)):
        for bit in (0x01, 0x10, 0x80):
            bad = bytearray(frame)
            bad[at] ^= bit
            with contextlib.suppress(ValueError):
                assert _redb.decompress(bytes(bad)) == data, f"byte {at} bit {bit:#x}"
    for cut in range(len(frame)):
        with pytest.raises(ValueError):
            _redb.decompress(frame[:cut])
    for bad in (frame + b"\0", frame + frame, b'{"path":"a"}', MAGIC + b"\xff" * 20):
        with pytest.raises(ValueError):
            _redb.decompress(bad)


def test_bad_arguments_are_python_errors() -> None:
    with pytest.raises(ValueError, match="level"):
        _redb.compress(b"x", 1000)
    with pytest.raises(TypeError):
        _redb.compress("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _redb.decompress(None)  # type: ignore[arg-type]


def test_compression_runs_on_many_threads_at_once() -> None:
    """Each thread has its own zstd contexts (the GIL is released around the work): many
    threads compressing and decompressing different values all get their own back."""
    errors: list[str] = []

    def work(n: int) -> None:
        for i in range(200):
            data = codec.canonical(big_record(n * 1000 + i))
            frame = _redb.compress(data, 1 + (i % 3))
            if _redb.decompress(frame) != data:
                errors.append(f"thread {n} value {i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_frames_in_finds_compressed_text_inside_a_file() -> None:
    """What a search of a database file for note text uses (records.searchable)."""
    secret = b"mk-hidden-marker-" * 20
    frame = _redb.compress(secret)
    blob = b"\0" * 100 + frame + b"\xa5" * 50 + frame[:-4]
    assert secret not in blob
    assert searchable(blob).count(secret) == 2  # the second one too, its checksum cut off


# --- the codec ----------------------------------------------------------------------


def test_small_values_stay_json_and_large_ones_are_frames() -> None:
    small = {"value": 2}
    assert codec.encode(small) == codec.canonical(small) == b'{"value":2}'
    rec = big_record(3)
    stored = codec.encode(rec)
    assert stored[:4] == MAGIC and len(codec.canonical(rec)) >= codec.COMPRESS_AT
    assert codec.decode(stored) == rec == codec.decode(codec.canonical(rec))
    assert codec.plain(stored) == codec.canonical(rec)


@pytest.mark.parametrize(
    "bad", [b"", b"[1,2]", b'{"a":', _redb.compress(b"[1]"), _redb.compress(b"{")[:-1]]
)
def test_decode_refuses_what_is_no_stored_object(bad: bytes) -> None:
    with pytest.raises(ValueError):
        codec.decode(bad)


def test_identity_is_the_json_not_the_stored_bytes() -> None:
    """A fingerprint and a chain link hash the canonical JSON: the same whether the value
    is stored compressed, at another level, or not at all."""
    rec = big_record(4)
    before = (_fingerprint(rec), link("0" * 64, rec))
    saved = codec.COMPRESS_AT
    codec.COMPRESS_AT = 1 << 62
    try:
        assert (_fingerprint(rec), link("0" * 64, rec)) == before
    finally:
        codec.COMPRESS_AT = saved


# --- stores -------------------------------------------------------------------------


def test_a_store_written_before_compression_reads_and_grows_as_one(
    tmp_path: Path, backend: str, uncompressed: None
) -> None:
    """Records and entries a store holds as JSON read back alike once new writes are
    compressed; re-sending them changes nothing (equality is of the values); the two
    kinds mix in one changelog whose chain verifies; a projected scan reads both."""
    data = tmp_path / "data"
    old = [big_record(i) for i in range(20)]
    with open_store(data, backend=backend) as s:
        s.apply([Upsert(r) for r in old])
        with s.backend.reading() as tx:
            assert all(v[:1] == b"{" for _, v in tx.scan("records"))
    codec.COMPRESS_AT = 128  # this ccc-watch
    new = [big_record(i) for i in range(20, 40)]
    with open_store(data, backend=backend) as s:
        assert s.apply([Upsert(r) for r in old]) == []
        s.apply([Upsert(r) for r in new])
        with s.backend.reading() as tx:
            kinds = {v[:1] for _, v in tx.scan("records")}
            assert kinds == {b"{", MAGIC[:1]}
            assert {v[:1] for _, v in tx.scan("changelog")} == {b"{", MAGIC[:1]}
        with s.snapshot() as snap:
            assert list(snap.records()) == sorted(old + new, key=lambda r: r["path"])
            cut = list(snap.records(("blake3",)))
            assert cut == [{"path": r["path"], "id": r["id"], "blake3": r["blake3"]} for r in cut]
            assert len(cut) == 40
            assert verify_store(snap).intact


def _flip_in_value(data: Path, backend: str, key: str) -> None:
    with open_store(data, backend=backend) as s, s.backend.writing() as tx:
        blob = tx.get("records", key)
        assert blob is not None and blob[:4] == MAGIC
        mid = len(blob) // 2
        tx.put("records", key, blob[:mid] + bytes([blob[mid] ^ 0x04]) + blob[mid + 1 :])


def test_a_damaged_compressed_record_is_a_damaged_record(tmp_path: Path, backend: str) -> None:
    """One flipped byte in a stored frame: get and both scans raise StoreCorruptError
    (which never quotes the value), salvage skips the record and says some were lost."""
    data = tmp_path / "data"
    recs = [big_record(i) for i in range(5)]
    with open_store(data, backend=backend) as s:
        s.apply([Upsert(r) for r in recs])
    victim = recs[2]["path"]
    _flip_in_value(data, backend, victim)
    with open_store(data, backend=backend, readonly=True) as s:
        with pytest.raises(StoreCorruptError, match="a stored record cannot be read") as e:
            s.get(victim)
        assert "words of the body" not in str(e.value)
        with pytest.raises(StoreCorruptError):
            list(s.records())
        with s.snapshot() as snap, pytest.raises(StoreCorruptError):
            list(snap.records(("blake3",)))
        kept, lost = s.salvage()
        assert lost and [r["path"] for r in kept] == sorted(
            r["path"] for r in recs if r["path"] != victim
        )
        assert s.get(recs[0]["path"]) == recs[0]
