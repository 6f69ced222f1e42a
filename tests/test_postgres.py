"""The database carrier against a real PostgreSQL server the suite starts itself
(tests/pg.py): publish and read back, idempotence, only changed rows written, a
publisher killed mid-publish, passwords, a server that is down, hostile names, and
drift computed on the server."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pg
import psycopg
import pyarrow as pa
import pytest

from ccc_watch.errors import EXIT_CONFIG, EXIT_UNAVAILABLE, ConfigError, HeadquartersError
from ccc_watch.nodes.carrier import ROW_SCHEMA, Manifest, ManifestHeader
from ccc_watch.nodes.postgres import PostgresCarrier
from tests.conftest import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def server() -> Iterator[pg.Server]:
    srv = pg.start()
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.root, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_ambient_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only what a test gives counts: no PGPASSWORD, no ~/.pgpass of this machine."""
    for name in ("PGPASSWORD", "PGSERVICE", "PGHOST", "PGUSER", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))


@pytest.fixture
def db(server: pg.Server) -> str:
    """A fresh database's URL (no password in it)."""
    return server.url(server.new_database())


@pytest.fixture
def password_file(server: pg.Server, tmp_path: Path) -> Path:
    path = tmp_path / "hq-password"
    path.write_text(server.password + "\n")
    path.chmod(0o600)
    return path


def rows(n: int, *, prefix: str = "notes/n", version: str = "a") -> list[dict[str, object]]:
    return [
        {
            "key": f"{prefix}{i:06d}.md",
            "path": f"{prefix}{i:06d}.md",
            "id": f"id-{i}",
            "blake3": f"{version}{i:063x}"[:64],
            "size": 100 + i,
            "mtime_ns": 1_700_000_000_000_000_000 + i,
            "record_type": "note",
            "classification": "PUBLIC",
        }
        for i in range(n)
    ]


def manifest(node: str, data: list[dict[str, object]], *, head_seq: int = 1) -> Manifest:
    data = sorted(data, key=lambda r: str(r["key"]))
    header = ManifestHeader(
        node=node,
        role="outpost",
        vault_id="vault-" + node,
        written_at=1_700_000_000.5 + head_seq,
        head_seq=head_seq,
        head_hash=f"{head_seq:064x}",
        records=len(data),
    )
    return Manifest(header, pa.Table.from_pylist(data, schema=ROW_SCHEMA))


def test_the_carrier_the_settings_name(server: pg.Server, password_file: Path) -> None:
    from ccc_watch.config import load
    from ccc_watch.nodes.postgres import carrier

    url = server.url(server.new_database())
    env = {"CCC_WATCH_HQ_URL": url, "CCC_WATCH_HQ_PASSWORD_FILE": str(password_file)}
    cfg = load(environ=env, config_file=password_file.with_name("absent.toml"), must_exist=False)
    assert carrier(cfg).headers() == []
    with pytest.raises(ConfigError, match="hq_url: is not set"):
        carrier(
            load(environ={}, config_file=password_file.with_name("absent.toml"), must_exist=False)
        )


def test_publish_reads_back_equal(db: str, password_file: Path) -> None:
    carrier = PostgresCarrier(db, password_file)
    sent = manifest("laptop", rows(500))
    report = carrier.publish(sent)
    assert (report.node, report.rows, report.changed) == ("laptop", 500, 500)
    assert "password" not in report.where and "/ccc_" in report.where
    got = carrier.load("laptop")
    assert got == sent
    assert carrier.headers() == [sent.header]
    assert carrier.load("desktop") is None


def test_publishing_twice_changes_nothing_the_second_time(db: str, password_file: Path) -> None:
    carrier = PostgresCarrier(db, password_file)
    sent = manifest("laptop", rows(1000))
    assert carrier.publish(sent).changed == 1000
    again = PostgresCarrier(db, password_file).publish(sent)
    assert (again.rows, again.changed) == (1000, 0)
    assert carrier.load("laptop") == sent


def test_only_changed_rows_are_written(db: str, password_file: Path) -> None:
    carrier = PostgresCarrier(db, password_file)
    data = rows(5000)
    carrier.publish(manifest("laptop", data))
    data[::50] = [dict(r, blake3="f" * 64, size=1) for r in data[::50]]  # 100 rows
    changed = manifest("laptop", data, head_seq=2)
    report = carrier.publish(changed)
    assert (report.rows, report.changed) == (5000, 100)
    assert carrier.load("laptop") == changed
    # Deleted rows count as changed; one more publication with 7 rows fewer.
    fewer = manifest("laptop", data[7:], head_seq=3)
    assert carrier.publish(fewer).changed == 7
    assert carrier.load("laptop") == fewer


def test_many_changed_rows_merge_through_copy(db: str, password_file: Path) -> None:
    """Past the pipelined-INSERT threshold the rows go by COPY into a temporary table
    and one merge: the same result."""
    carrier = PostgresCarrier(db, password_file)
    carrier.publish(manifest("laptop", rows(6000)))
    data = rows(6000, version="b")[:5000] + rows(300, prefix="new/")
    changed = manifest("laptop", data, head_seq=2)
    report = carrier.publish(changed)
    assert report.changed == 5000 + 300 + 1000  # rewritten, new, gone
    assert carrier.load("laptop") == changed
    assert carrier.publish(changed).changed == 0


def test_nodes_are_kept_apart(db: str, password_file: Path) -> None:
    carrier = PostgresCarrier(db, password_file)
    a, b = manifest("a", rows(10)), manifest("b", rows(20, version="c"))
    carrier.publish(a)
    carrier.publish(b)
    carrier.publish(manifest("a", rows(3), head_seq=5))
    assert carrier.load("b") == b
    assert [h.node for h in carrier.headers()] == ["a", "b"]
    assert carrier.headers()[0].records == 3


HOSTILE = [
    'it\'s "quoted"/a.md',
    "back\\slash\\'; DROP TABLE ccc_manifest; --.md",
    "new\nline/and\ttab.md",
    "ünïcödé/日本語/🦀.md",
    "%s %(a)s {0} $1 .md",
    "line\rreturn\u2028sep.md",
    "",
]


def test_hostile_names_and_paths_round_trip(db: str, password_file: Path) -> None:
    carrier = PostgresCarrier(db, password_file)
    data = [
        dict(r, key=p, path=p, id=p or None)
        for r, p in zip(rows(len(HOSTILE)), HOSTILE, strict=True)
    ]
    data.append(dict(rows(1)[0], key="secret:" + "ab" * 32, path=None, classification="SECRET"))
    node = "ev'il\"\\node\n; DROP TABLE ccc_nodes; --"
    sent = manifest(node, data)
    assert carrier.publish(sent).changed == len(data)
    assert carrier.load(node) == sent
    assert carrier.headers() == [sent.header]
    assert carrier.publish(sent).changed == 0
    assert carrier.load("ev'il") is None


def test_a_second_carrier_on_an_existing_schema_and_a_newer_schema(
    db: str, password_file: Path, server: pg.Server
) -> None:
    PostgresCarrier(db, password_file).publish(manifest("a", rows(2)))
    assert PostgresCarrier(db, password_file).headers()[0].node == "a"
    with psycopg.connect(db, password=server.password, autocommit=True) as conn:
        conn.execute("UPDATE ccc_schema SET version = 99")
    with pytest.raises(HeadquartersError, match="schema version 99, newer") as e:
        PostgresCarrier(db, password_file).headers()
    assert e.value.exit_code == EXIT_UNAVAILABLE


# -- passwords and servers that refuse ------------------------------------------------


def test_password_file_must_be_private_and_regular(
    db: str, password_file: Path, tmp_path: Path
) -> None:
    password_file.chmod(0o640)
    with pytest.raises(ConfigError, match=r"hq_password_file: .* may be read by others.*chmod 600"):
        PostgresCarrier(db, password_file)
    with pytest.raises(ConfigError, match="is not a regular file"):
        PostgresCarrier(db, tmp_path)
    with pytest.raises(ConfigError, match="cannot read"):
        PostgresCarrier(db, tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.touch(mode=0o600)
    with pytest.raises(ConfigError, match="is empty"):
        PostgresCarrier(db, empty)
    assert ConfigError("hq_password_file", "x").exit_code == EXIT_CONFIG
    password_file.chmod(0o400)
    assert PostgresCarrier(db, password_file).headers() == []


def test_the_password_file_is_read_once(db: str, password_file: Path) -> None:
    carrier = PostgresCarrier(db, password_file)
    password_file.write_text("changed-later\n")
    assert carrier.headers() == []


def test_pgpassword_is_used_without_a_file(
    db: str, server: pg.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(HeadquartersError, match="no password supplied"):
        PostgresCarrier(db).headers()
    monkeypatch.setenv("PGPASSWORD", server.password)
    assert PostgresCarrier(db).headers() == []


def test_a_pgpass_file_is_used_without_a_file(
    db: str, server: pg.Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"*:*:*:{pg.ROLE}:{server.password}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    assert PostgresCarrier(db).headers() == []


def test_a_wrong_password_is_one_line_naming_server_and_cause(
    db: str, tmp_path: Path, server: pg.Server
) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password")
    wrong.chmod(0o600)
    with pytest.raises(HeadquartersError) as e:
        PostgresCarrier(db, wrong).publish(manifest("a", rows(1)))
    text = str(e.value)
    assert e.value.exit_code == EXIT_UNAVAILABLE
    assert "\n" not in text
    assert 'password authentication failed for user "ccc_outpost"' in text
    assert f"ccc_outpost@{server.socket_dir}" in text and db.split("?")[0].rsplit("/", 1)[1] in text
    assert "not-the-password" not in text and server.password not in text
    assert "hq_password_file" in text


def test_a_server_that_is_down_is_one_line(tmp_path: Path, password_file: Path) -> None:
    url = f"postgresql://ccc@/hq?host={tmp_path}"  # no server listens there
    with pytest.raises(HeadquartersError) as e:
        PostgresCarrier(url, password_file).headers()
    text = str(e.value)
    assert "\n" not in text and e.value.exit_code == EXIT_UNAVAILABLE
    assert text.startswith(f"headquarters database ccc@{tmp_path}/hq: ")
    assert "No such file or directory" in text and "is the server running" in text


def test_a_url_libpq_cannot_read_is_a_bad_setting(password_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config: hq_url: libpq cannot read it: .*%zz") as e:
        PostgresCarrier("postgresql://ccc@%zz/hq", password_file)
    assert e.value.exit_code == EXIT_CONFIG


def test_a_missing_database_is_one_line(server: pg.Server, password_file: Path) -> None:
    with pytest.raises(HeadquartersError, match='database "nowhere" does not exist; create it'):
        PostgresCarrier(server.url("nowhere"), password_file).headers()


def test_errors_reach_the_command_line_as_one_line(tmp_path: Path, password_file: Path) -> None:
    """What a CLI does with a HeadquartersError: its message and code, no traceback."""
    script = textwrap.dedent(f"""
        import sys
        from ccc_watch.errors import CccWatchError
        from ccc_watch.nodes.postgres import PostgresCarrier
        try:
            PostgresCarrier("postgresql://ccc@/hq?host={tmp_path}", None).headers()
        except CccWatchError as e:
            print(e, file=sys.stderr)
            sys.exit(e.exit_code)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == EXIT_UNAVAILABLE
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


# -- a publisher killed mid-publish ---------------------------------------------------

KILLED_PUBLISHER = """
import sys
import pyarrow as pa
sys.path.insert(0, {tests!r})
from test_postgres import manifest, rows
from ccc_watch.nodes.postgres import PostgresCarrier
from pathlib import Path
carrier = PostgresCarrier({url!r}, Path({password_file!r}))
data = rows(200_000, version="k") + rows(50_000, prefix="killed/")
carrier.publish(manifest("laptop", data, head_seq=9))
print("published")
"""


def test_a_publisher_killed_mid_publish_leaves_the_previous_manifest_whole(
    db: str, password_file: Path, server: pg.Server
) -> None:
    carrier = PostgresCarrier(db, password_file)
    # The new manifest drops the 20,000 "old/" rows (a DELETE), rewrites 200,000 and
    # adds 50,000 (COPY, then the merge into ccc_manifest): killed during the merge.
    previous = manifest("laptop", rows(200_000) + rows(20_000, prefix="old/"))
    carrier.publish(previous)
    script = KILLED_PUBLISHER.format(
        tests=str(ROOT / "tests"), url=db, password_file=str(password_file)
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    dbname = db.split("?")[0].rsplit("/", 1)[1]
    seen = None
    try:
        with server.admin(dbname) as admin:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                row = admin.execute(
                    "SELECT pid, query FROM pg_stat_activity WHERE application_name = "
                    "'ccc-watch' AND state = 'active' AND query LIKE 'INSERT INTO ccc_manifest%'"
                ).fetchone()
                if row:
                    seen = row
                    break
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            # The server notices the dropped connection and rolls back.
            for _ in range(200):
                if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                     (seen[0] if seen else -1,)).fetchone():  # fmt: skip
                    break
                time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = proc.stdout.read().decode() if proc.stdout else ""
    out += proc.stderr.read().decode() if proc.stderr else ""
    assert seen is not None, f"the publisher never reached its merge: {out}"
    assert proc.returncode == -signal.SIGKILL and "published" not in out
    assert carrier.headers() == [previous.header]
    assert carrier.load("laptop") == previous
    # ... and the next publication works, from that previous state.
    assert carrier.publish(previous).changed == 0


class PostgresCarried:
    """The two-daemon test's carrier: one database both devices publish to."""

    def __init__(self, server: pg.Server, url: str, password_file: Path) -> None:
        self.server, self.url, self.password_file = server, url, password_file

    def settings(self, device: Path) -> dict[str, str]:
        return {"CCC_WATCH_HQ_URL": self.url, "CCC_WATCH_HQ_PASSWORD_FILE": str(self.password_file)}

    def carrier(self, device: Path) -> PostgresCarrier:
        return PostgresCarrier(self.url, self.password_file)

    def carry(self) -> None:
        pass  # the server is the carrier

    def stored(self) -> list[bytes]:
        dbname = self.url.split("?")[0].rsplit("/", 1)[1]
        with self.server.admin(dbname) as admin:
            found = [
                str(row).encode()
                for table in ("ccc_nodes", "ccc_manifest")
                for row in admin.execute(f"SELECT t::text FROM {table} AS t")
            ]
        assert found
        return found


def test_two_daemons_report_exactly_the_differences_through_postgres(
    tmp_path: Path, env: dict[str, str], db: str, password_file: Path, server: pg.Server
) -> None:
    """tests/test_nodes.py's two daemons, laptop and desktop, publishing to one real
    PostgreSQL database instead of a shared folder: the same findings, the same recovery
    list, a second publication that changes nothing, and the SECRET note's name nowhere
    in the database; both nodes published their store's head, so the server compared
    them (`compared_on`); once the laptop's store moves past what it published, the
    laptop compares its fresh manifest itself and sees its new change."""
    from tests.test_nodes import two_daemons

    out, laptop_env = two_daemons(tmp_path, env, PostgresCarried(server, db, password_file))
    assert out["compared_on"] == {"desktop": "server"}
    vault, data = tmp_path / "a" / "vault", tmp_path / "a" / "data"
    (vault / "new.md").write_text("written after the last publication\n")
    assert cli(laptop_env, vault, data, "scan").returncode == 0
    got = cli(laptop_env, vault, data, "drift", "--json")
    assert got.returncode == 1, got.stderr
    after = json.loads(got.stdout)
    assert after["compared_on"] == {"desktop": "here"}
    assert [f for f in after["findings"] if f not in out["findings"]] == [
        {"kind": "missing-there", "node": "desktop", "key": "new.md"}
    ]


# -- drift on the server --------------------------------------------------------------


def drift_case() -> tuple[Manifest, Manifest, dict[tuple[str, str], dict[str, object]]]:
    """Two manifests with one finding of every kind, and those findings by (kind, key)."""
    base = rows(12)
    k = [str(r["key"]) for r in base]
    here = {str(r["key"]): dict(r) for r in base}
    there = {str(r["key"]): dict(r) for r in base}
    del here[k[1]]  # missing here
    del there[k[2]]  # missing there
    here[k[3]].update(blake3="d" * 64, mtime_ns=3 * 10**18)  # differs, newer here
    there[k[4]].update(blake3="e" * 64, mtime_ns=4 * 10**18)  # differs, newer there
    there[k[5]].update(blake3="f" * 64)  # differs, same mtime
    moved = there.pop(k[6])  # renamed by id (content changed too)
    there["moved/x.md"] = dict(moved, key="moved/x.md", path="moved/x.md", blake3="9" * 64)
    for side in (here, there):  # renamed by content: no id, one blake3 each side
        side[k[7]]["id"] = None
    there["else/y.md"] = dict(there.pop(k[7]), key="else/y.md", path="else/y.md")
    # ids that are not unique among the unmatched keys are no evidence of a rename
    here["dup-a.md"] = dict(base[8], key="dup-a.md", path="dup-a.md", id="dup", blake3="1" * 64)
    here["dup-b.md"] = dict(base[8], key="dup-b.md", path="dup-b.md", id="dup", blake3="2" * 64)
    there["dup-c.md"] = dict(base[8], key="dup-c.md", path="dup-c.md", id="dup", blake3="3" * 64)
    c1 = "notes/n000000.sync-conflict-20260413-091523-K3X2R2T.md"
    c2 = "a/b (Conflicted copy MyMac 202411281430).md"
    c3 = "n (Jane's CONFLICTED copy 2024-01-15).md"
    here[c1] = dict(base[9], key=c1, path=c1, id=None, blake3="4" * 64)
    there[c2] = dict(base[9], key=c2, path=c2, id=None, blake3="5" * 64)
    here[c3] = dict(base[9], key=c3, path=c3, id=None, blake3="6" * 64)
    there[c3] = dict(base[9], key=c3, path=c3, id=None, blake3="7" * 64)
    secret = "secret:" + "cd" * 32
    here[secret] = dict(base[0], key=secret, path=None, id=None, blake3="8" * 64)
    h = manifest("here", list(here.values()))
    t = manifest("there", list(there.values()))
    t = Manifest(dataclasses.replace(t.header, role="headquarters"), t.rows)
    want = {
        ("missing-here", k[1]): {},
        ("missing-here", "dup-c.md"): {},
        ("missing-there", k[2]): {},
        ("missing-there", "dup-a.md"): {},
        ("missing-there", "dup-b.md"): {},
        ("missing-there", secret): {},
        ("differs", k[3]): {"newer": "here", "authoritative": "there"},
        ("differs", k[4]): {"newer": "there", "authoritative": "there"},
        ("differs", k[5]): {"authoritative": "there"},
        ("renamed", k[6]): {"other": "moved/x.md"},
        ("renamed", k[7]): {"other": "else/y.md"},
        ("conflict", c1): {"side": "here"},
        ("conflict", c2): {"side": "there"},
        ("conflict", c3): {"side": "both"},
    }
    return h, t, want


def test_drift_on_the_server(db: str, password_file: Path) -> None:
    carrier = PostgresCarrier(db, password_file)
    h, t, want = drift_case()
    carrier.publish(h)
    carrier.publish(t)
    now = t.header.written_at + 60
    found = carrier.drift("here", "there", stale_after=3600, now=now)
    order = ("stale", "missing-here", "missing-there", "differs", "renamed", "conflict")
    assert [(f["kind"], f["key"]) for f in found] == sorted(
        want, key=lambda kk: (order.index(kk[0]), kk[1])
    )
    for f in found:
        extra = {k: v for k, v in f.items() if k not in ("kind", "key", "node")}
        assert f["node"] == "there" and extra == want[(f["kind"], f["key"])], f
    # Seen from headquarters: the same, mirrored; headquarters is authoritative still.
    back = carrier.drift("there", "here", stale_after=3600, now=now)
    kinds = [f["kind"] for f in back]
    assert kinds.count("missing-here") == 4 and kinds.count("missing-there") == 2
    assert {f.get("authoritative") for f in back if f["kind"] == "differs"} == {"there"}
    assert carrier.drift("here", "here", stale_after=3600, now=now) == []
    # A stale node is one finding, not its differences.
    stale = carrier.drift("here", "there", stale_after=30, now=now)
    assert stale == [{"kind": "stale", "node": "there", "key": "there", "age": 60.0}]
    with pytest.raises(ValueError, match="no manifest published by nobody"):
        carrier.drift("here", "nobody", stale_after=30)


def test_drift_on_the_server_equals_the_folder_carriers(db: str, password_file: Path) -> None:
    """Once the folder carrier's comparison (ccc_watch/nodes/drift.py, another branch of
    issue 13) is here, both must agree finding for finding."""
    drift = pytest.importorskip(
        "ccc_watch.nodes.drift", reason="ccc_watch/nodes/drift.py is not on this branch yet"
    )
    carrier = PostgresCarrier(db, password_file)
    cases = [drift_case()[:2], *(random_case(seed) for seed in range(3))]
    for n, (h, t) in enumerate(cases):
        h = Manifest(dataclasses.replace(h.header, node=f"h{n}"), h.rows)
        t = Manifest(dataclasses.replace(t.header, node=f"t{n}"), t.rows)
        carrier.publish(h)
        carrier.publish(t)
        for stale_after in (3600.0, 30.0):
            now = t.header.written_at + 60
            theirs = [f.as_dict() for f in drift.compare(h, t, stale_after=stale_after, now=now)]
            ours = carrier.drift(f"h{n}", f"t{n}", stale_after=stale_after, now=now)
            assert ours == theirs, n


def random_case(seed: int) -> tuple[Manifest, Manifest]:
    """Two manifests of a shared base, each changed at random: deletions, edits (mtime
    up or down), moves with the id kept or dropped, copies (duplicate ids and content),
    sync-conflict copies, SECRET rows, hostile names."""
    import random

    rnd = random.Random(seed)
    base = rows(1500) + [dict(r, key=p, path=p) for r, p in zip(rows(7), HOSTILE, strict=True)]
    sides = []
    for _ in range(2):
        side = {str(r["key"]): dict(r) for r in base}
        for key in list(side):
            roll = rnd.random()
            row = side[key]
            if roll < 0.05:
                del side[key]
            elif roll < 0.10:
                row.update(blake3=f"{rnd.getrandbits(256):064x}", mtime_ns=rnd.getrandbits(62))
            elif roll < 0.13:
                new = f"moved/{rnd.randrange(10**6)}.md"
                side[new] = dict(side.pop(key), key=new, path=new)
                if rnd.random() < 0.5:
                    side[new]["id"] = None
            elif roll < 0.15:
                copy = f"copy/{rnd.randrange(10**6)}.md"
                side[copy] = dict(row, key=copy, path=copy)
            elif roll < 0.17:
                stem, _, ext = key.rpartition(".")
                name = rnd.choice([
                    f"{stem}.sync-conflict-20260413-091523-K3X2R2T.{ext}",
                    f"{stem} (Conflicted copy Mac {rnd.randrange(10**6)}).{ext}",
                    f"{stem} (Bo's conflicted COPY 2024-01-15).{ext}",
                ])  # fmt: skip
                side[name] = dict(row, key=name, path=name, blake3=f"{rnd.getrandbits(256):064x}")
            elif roll < 0.18:
                secret = f"secret:{rnd.getrandbits(256):064x}"
                side[secret] = dict(row, key=secret, path=None, classification="SECRET")
        sides.append(list(side.values()))
    h = manifest("h", sides[0])
    t = manifest("t", sides[1])
    return h, Manifest(
        dataclasses.replace(t.header, role=rnd.choice(["outpost", "headquarters"])), t.rows
    )


# -- a role per outpost, as the README sets it up --------------------------------------


def readme_sql(after: str) -> str:
    """The first ```sql block of the README after the text `after`."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```sql\n", text.index(after)) + len("```sql\n")
    return text[start : text.index("```", start)]


def test_a_role_per_outpost_writes_only_its_own_rows(
    db: str, password_file: Path, server: pg.Server, tmp_path: Path
) -> None:
    owner = PostgresCarrier(db, password_file)
    hq = manifest("hq", rows(3000))
    owner.publish(hq)  # the owner's first publication lays the tables out
    statements = readme_sql("runs exactly these statements")
    once, per_outpost = statements.split("-- per outpost")
    with psycopg.connect(db, password=server.password, autocommit=True) as conn:
        conn.execute(once)
        for node in ("laptop", "desktop"):
            with server.admin() as admin:
                admin.execute(f"CREATE ROLE {node} LOGIN PASSWORD '{server.password}'")
            conn.execute(per_outpost.split("\n", 1)[1].replace("laptop", node))
    laptop_url = db.replace("ccc_outpost@", "laptop@")
    laptop = PostgresCarrier(laptop_url, password_file)
    own = manifest("laptop", rows(2500, version="b"))  # past the COPY + merge threshold
    assert laptop.publish(own).changed == 2500
    assert laptop.publish(manifest("laptop", rows(10, version="b"), head_seq=2)).changed == 2490
    assert laptop.load("hq") == hq  # every node may be read
    for other in ("desktop", "hq"):  # ... but not written
        with pytest.raises(HeadquartersError, match="row-level security") as e:
            laptop.publish(manifest(other, rows(5, version="c")))
        assert e.value.exit_code == 77 and "\n" not in str(e.value)
    assert owner.load("hq") == hq
    assert [h.node for h in owner.headers()] == ["hq", "laptop"]


def test_the_readme_queries_run(db: str, password_file: Path, server: pg.Server) -> None:
    carrier = PostgresCarrier(db, password_file)
    carrier.publish(manifest("hq", rows(5)))
    carrier.publish(manifest("laptop", rows(3, version="e")))
    queries = readme_sql("**Querying every node.**")
    with psycopg.connect(db, password=server.password) as conn:
        found = [conn.execute(q).fetchall() for q in queries.split(";") if q.strip(" \n-")
                 and not all(line.startswith("--") for line in q.strip().splitlines())]  # fmt: skip
    nodes, lacking, differing = found
    assert [n[0] for n in nodes] == ["hq", "laptop"]
    assert sorted(p for (p,) in lacking) == [str(r["path"]) for r in rows(5)[3:]]
    assert [(k, v, n) for k, v, n in differing] == [
        (str(r["key"]), 2, ["hq", "laptop"]) for r in rows(3)
    ]


def test_a_second_publisher_of_one_node_waits_then_gives_up(
    db: str, password_file: Path, server: pg.Server
) -> None:
    """Two installations with one node name take turns; one that waits past
    lock_timeout stops with one line, exit 75, and the manifest stays as it was."""
    first = manifest("laptop", rows(20))
    PostgresCarrier(db, password_file).publish(first)
    impatient = PostgresCarrier(db, password_file, lock_timeout=0.3)
    with psycopg.connect(db, password=server.password, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (0x43C3, "laptop"))
        start = time.monotonic()
        with pytest.raises(HeadquartersError) as e:
            impatient.publish(manifest("laptop", rows(20, version="b"), head_seq=2))
        assert 0.25 < time.monotonic() - start < 10
        assert e.value.exit_code == 75 and "\n" not in str(e.value)
        assert "another publisher of this node holds its lock" in str(e.value)
        assert impatient.publish(manifest("desktop", rows(3))).changed == 3  # others go on
        assert impatient.load("laptop") == first
        holder.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (0x43C3, "laptop"))
    assert impatient.publish(manifest("laptop", rows(20, version="b"), head_seq=2)).changed == 20


CONCURRENT_PUBLISHER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_postgres import manifest, rows
from ccc_watch.nodes.postgres import PostgresCarrier
PostgresCarrier({url!r}, Path({password_file!r})).publish(
    manifest("laptop", rows(100_000, version="n"), head_seq=2))
"""


def test_a_reader_during_a_publication_sees_the_previous_or_the_new_manifest(
    db: str, password_file: Path, server: pg.Server
) -> None:
    carrier = PostgresCarrier(db, password_file)
    previous = manifest("laptop", rows(100_000))
    new = manifest("laptop", rows(100_000, version="n"), head_seq=2)
    carrier.publish(previous)
    script = CONCURRENT_PUBLISHER.format(
        tests=str(ROOT / "tests"), url=db, password_file=str(password_file)
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    dbname = db.split("?")[0].rsplit("/", 1)[1]
    seen: list[tuple[bool, str]] = []  # (a publisher was writing at the start, what was read)
    with server.admin(dbname) as admin:
        while True:
            done = proc.poll() is not None
            writing = admin.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = 'ccc-watch' AND "
                "state = 'active' AND (query LIKE 'COPY%' OR query LIKE 'INSERT%' "
                "OR query LIKE 'DELETE%')"
            ).fetchone()
            got = carrier.load("laptop")
            seen.append((bool(writing), "previous" if got == previous else
                         "new" if got == new else "a mix"))  # fmt: skip
            if done:
                break
    assert proc.returncode == 0
    assert all(what != "a mix" for _, what in seen), seen
    assert seen[-1][1] == "new"
    assert any(writing for writing, _ in seen), "no read overlapped the publication"


def test_diff_on_the_server_equals_the_duckdb_join(db: str, password_file: Path) -> None:
    import duckdb

    from ccc_watch.nodes.drift import DIFF_SQL
    from ccc_watch.nodes.postgres import DIFF_SCHEMA

    carrier = PostgresCarrier(db, password_file)
    base = rows(3000)
    here = [r for i, r in enumerate(base) if i % 7] + rows(40, prefix="only-here/")
    there = [dict(r, blake3="e" * 64) if i % 11 == 0 else r for i, r in enumerate(base) if i % 5]
    there += [dict(r, key=p, path=p) for r, p in zip(rows(len(HOSTILE)), HOSTILE, strict=True)]
    h, t = manifest("here", here), manifest("there", there)
    carrier.publish(h)
    carrier.publish(t)
    got = carrier.diff("here", "there")
    con = duckdb.connect(":memory:")
    con.register("h", h.rows)
    con.register("t", t.rows)
    want = con.sql(DIFF_SQL).to_arrow_table().cast(DIFF_SCHEMA)
    assert got.num_rows > 1000
    assert got.equals(want)
    assert carrier.diff("here", "here").num_rows == 0
    assert carrier.diff("here", "nobody").num_rows == len(here)


def test_tls_as_the_readme_advises(tmp_path: Path) -> None:
    """hostssl + scram-sha-256 on the server, sslmode=verify-full against the CA at the
    outpost: that works; without TLS, or against another CA, one line, exit 69."""
    srv = pg.start(tls=True)
    try:
        name = srv.new_database()
        password_file = tmp_path / "pw"
        password_file.write_text(srv.password)
        password_file.chmod(0o600)
        base = f"postgresql://{pg.ROLE}@localhost:{srv.port}/{name}"
        good = f"{base}?sslmode=verify-full&sslrootcert={srv.ca}"
        carrier = PostgresCarrier(good, password_file)
        assert carrier.publish(manifest("laptop", rows(5))).changed == 5
        with psycopg.connect(good, password=srv.password) as conn:
            query = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            assert conn.execute(query).fetchone() == (True,)
        with pytest.raises(HeadquartersError, match="no encryption") as e:
            PostgresCarrier(f"{base}?sslmode=disable", password_file).headers()
        assert e.value.exit_code == EXIT_UNAVAILABLE and "\n" not in str(e.value)
        other_ca = tmp_path / "other"
        other_ca.mkdir()
        wrong, _ = pg.tls_files(other_ca, None)
        with pytest.raises(HeadquartersError, match=r"SSL error: .*; check hq_url's sslmode") as e:
            PostgresCarrier(
                f"{base}?sslmode=verify-full&sslrootcert={wrong}", password_file
            ).headers()
        assert e.value.exit_code == EXIT_UNAVAILABLE and "\n" not in str(e.value)
        assert f"{pg.ROLE}@localhost:{srv.port}/{name}: " in str(e.value)
    finally:
        srv.stop()
        shutil.rmtree(srv.root, ignore_errors=True)


def test_one_schema_per_vault_by_the_urls_search_path(
    db: str, password_file: Path, server: pg.Server
) -> None:
    """The README's `options=-csearch_path%3D...`: two vaults in one database."""
    name = db.split("?")[0].rsplit("/", 1)[1]
    with server.admin(name) as admin:
        for schema in ("vault_a", "vault_b"):
            admin.execute(f'CREATE SCHEMA {schema} AUTHORIZATION "{pg.ROLE}"')
    a = PostgresCarrier(db + "&options=-csearch_path%3Dvault_a", password_file)
    b = PostgresCarrier(db + "&options=-csearch_path%3Dvault_b", password_file)
    a.publish(manifest("laptop", rows(3)))
    b.publish(manifest("laptop", rows(5)))
    assert a.headers()[0].records == 3 and b.headers()[0].records == 5
    with server.admin(name) as admin:
        found = admin.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'ccc_manifest'"
        ).fetchall()
    assert sorted(s for (s,) in found) == ["vault_a", "vault_b"]
