"""Headquarters and outposts with the folder carrier: two real daemons on two copies of
a vault, their manifest folders carried between them as a sync engine would, `drift`
reporting exactly the differences made; hostile manifest files; atomic, idempotent
publication; what leaves the device of a SECRET note."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ccc_watch.nodes.carrier import ROW_SCHEMA, Carrier, Manifest, ManifestHeader
from ccc_watch.nodes.folder import FolderCarrier
from tests.conftest import cli
from tests.daemon_harness import Daemon, wait_until

SECRET_NAME = "Project Nightingale"
SECRET_NOTE = f"{SECRET_NAME}.md"
CONFLICT = "keep.sync-conflict-20261130-101010-ABCDEFG.md"


def _vault(root: Path) -> Path:
    v = root / "vault"
    v.mkdir()
    for name in ("keep", "edit", "gone", "move"):
        (v / f"{name}.md").write_text(f"# {name}\n\nthe {name} note\n")
    (v / SECRET_NOTE).write_text("---\nclassification: SECRET\n---\nthe plan\n")
    return v


def _key(root: Path, env: dict[str, str]) -> Path:
    key = root / "shared.key"
    subprocess.run(
        [sys.executable, "-m", "ccc_watch.cli", "key", "new", str(key)],
        env=env, check=True, capture_output=True, cwd=root,
    )  # fmt: skip
    return key


def _node_env(env: dict[str, str], node: str, role: str, carried: dict[str, str], key: Path,
              state: Path) -> dict[str, str]:  # fmt: skip
    return (
        env
        | carried
        | {
            "CCC_WATCH_NODE": node,
            "CCC_WATCH_ROLE": role,
            "CCC_WATCH_KEY_FILE": str(key),
            "CCC_WATCH_PUBLISH_INTERVAL": "0.5",
            "XDG_STATE_HOME": str(state),  # a log file each
        }
    )


class Carried(Protocol):
    """How the two-daemon test reaches one carrier: the settings each device gets, what
    is published, and the sync engine's part."""

    def settings(self, device: Path) -> dict[str, str]:
        """The environment naming the carrier on the device whose folder is device."""

    def carrier(self, device: Path) -> Carrier:
        """The carrier as that device sees it."""

    def carry(self) -> None:
        """What a sync engine does between the devices (nothing for a server)."""

    def stored(self) -> list[bytes]:
        """Everything the carrier holds, as bytes, to search for a note's name."""


class FolderCarried:
    """The folder carrier: a manifest folder per device, copied across by carry()."""

    def __init__(self, root: Path) -> None:
        self.a, self.b = root / "a" / "manifests", root / "b" / "manifests"

    def settings(self, device: Path) -> dict[str, str]:
        return {"CCC_WATCH_MANIFEST_DIR": str(device / "manifests")}

    def carrier(self, device: Path) -> Carrier:
        return FolderCarrier(device / "manifests")

    def carry(self) -> None:
        shutil.copy2(self.a / "laptop.parquet", self.b / "laptop.parquet")
        shutil.copy2(self.b / "desktop.parquet", self.a / "desktop.parquet")

    def stored(self) -> list[bytes]:
        files = [f for folder in (self.a, self.b) for f in folder.iterdir()]
        for f in files:
            assert oct(f.stat().st_mode & 0o777) == "0o600", f
        # Nothing but the nodes' files is in the folders.
        assert sorted(p.name for p in self.a.iterdir()) == ["desktop.parquet", "laptop.parquet"]
        return [f.read_bytes() for f in files]


def _caught_up(d: Daemon, carrier: Carrier, node: str) -> None:
    """Wait until the daemon has settled and published its store's current head."""
    d.settle()

    def done() -> bool:
        head = json.loads(d.cli("info", "--json").stdout)["changelog_head"]
        published = {h.node: h.head_seq for h in carrier.headers()}
        return published.get(node) == head

    wait_until(done, f"{node} published its head", timeout=30)


def _findings(stdout: str) -> set[tuple[str, ...]]:
    out = set()
    for f in json.loads(stdout)["findings"]:
        out.add(
            tuple(
                str(f.get(k))
                for k in ("kind", "node", "key", "other", "newer", "authoritative", "side")
            )
        )
    return out


def test_two_daemons_report_exactly_the_differences(tmp_path: Path, env: dict[str, str]) -> None:
    """Two daemons, laptop (outpost) and desktop (headquarters), on two copies of a vault,
    each changed differently; their manifest folders are carried between them (copied,
    as a sync engine does); `drift` on each reports exactly those changes, `--missing`
    the laptop's recovery list, and nothing anywhere names the SECRET note."""
    two_daemons(tmp_path, env, FolderCarried(tmp_path))


def two_daemons(
    tmp_path: Path, env: dict[str, str], carried: Carried
) -> tuple[dict[str, Any], dict[str, str]]:
    """The two-daemon scenario over one carrier (tests/test_postgres.py runs it on a
    real PostgreSQL server); returns the laptop's `drift --json` output and its
    environment (its vault is tmp_path/a/vault, its data dir tmp_path/a/data)."""
    (tmp_path / "a").mkdir()
    va = _vault(tmp_path / "a")
    (tmp_path / "b").mkdir()
    vb = tmp_path / "b" / "vault"
    shutil.copytree(va, vb)
    key = _key(tmp_path, env)
    da, db = tmp_path / "a", tmp_path / "b"
    ca, cb = carried.carrier(da), carried.carrier(db)
    laptop = Daemon(va, da / "data", da / "log")
    desktop = Daemon(vb, db / "data", db / "log")
    laptop.env = _node_env(env, "laptop", "outpost", carried.settings(da), key, da / "state")
    desktop.env = _node_env(env, "desktop", "headquarters", carried.settings(db), key, db / "state")
    laptop.start()
    desktop.start()
    try:
        _caught_up(laptop, ca, "laptop")
        _caught_up(desktop, cb, "desktop")
        # Different changes on each device.
        time.sleep(0.05)  # a newer mtime than the copy's
        with (va / "edit.md").open("a") as f:
            f.write("edited on the laptop\n")
        (va / "move.md").rename(va / "moved.md")
        (vb / "gone.md").unlink()
        (vb / CONFLICT).write_text("# keep\n\nthe desktop's version\n")
        with (vb / SECRET_NOTE).open("a") as f:
            f.write("changed on the desktop\n")
        _caught_up(laptop, ca, "laptop")
        _caught_up(desktop, cb, "desktop")
        carried.carry()  # the sync engine carries each node's manifest to the other device

        nodes = json.loads(laptop.cli("nodes", "--json").stdout)
        assert [(n["node"], n["role"], n["this"], n["stale"]) for n in nodes] == [
            ("desktop", "headquarters", False, False),
            ("laptop", "outpost", True, False),
        ]
        assert all(n["records"] == 5 for n in nodes), nodes

        got = laptop.cli("drift", "--json")
        assert got.returncode == 1, got.stderr
        out = json.loads(got.stdout)
        secret = [f["key"] for f in out["findings"] if f["key"].startswith("secret:")]
        assert len(secret) == 1
        published = ca.load("laptop")
        assert published is not None
        row = [r for r in published.rows.to_pylist() if r["key"] == secret[0]]
        assert row == [
            {"key": secret[0], "path": None, "id": None, "blake3": row[0]["blake3"], "size": None,
             "mtime_ns": None, "record_type": None, "classification": "SECRET"}
        ]  # fmt: skip
        assert row[0]["blake3"] is not None
        assert _findings(got.stdout) == {
            ("differs", "desktop", "edit.md", "None", "here", "desktop", "None"),
            ("renamed", "desktop", "moved.md", "move.md", "None", "None", "None"),
            ("missing-there", "desktop", "gone.md", "None", "None", "None", "None"),
            ("conflict", "desktop", CONFLICT, "None", "None", "None", "there"),
            ("differs", "desktop", secret[0], "None", "None", "desktop", "None"),
        }
        drift_lines = [ln for ln in got.stderr.splitlines() if "DRIFT kind=node-" in ln]
        assert len(drift_lines) == 5, got.stderr
        assert "Traceback" not in got.stderr

        # Headquarters against every outpost: the same differences, seen from there.
        hq = desktop.cli("drift", "--json")
        assert hq.returncode == 1, hq.stderr
        assert _findings(hq.stdout) == {
            ("differs", "laptop", "edit.md", "None", "there", "desktop", "None"),
            ("renamed", "laptop", "move.md", "moved.md", "None", "None", "None"),
            ("missing-here", "laptop", "gone.md", "None", "None", "None", "None"),
            ("conflict", "laptop", CONFLICT, "None", "None", "None", "here"),
            ("differs", "laptop", secret[0], "None", "None", "desktop", "None"),
        }

        # Outpost recovery: what the laptop lacks or holds stale against headquarters.
        missing = laptop.cli("drift", "--against", "desktop", "--missing")
        assert missing.returncode == 1
        assert missing.stdout.splitlines() == ["edit.md", "move.md"]

        # Publishing again, with nothing changed, changes nothing.
        again = laptop.cli("manifest", "publish", "--json")
        assert again.returncode == 0, again.stderr
        assert [r["changed"] for r in json.loads(again.stdout)] == [0]

        text = laptop.cli("drift")
        outputs = [got.stdout, got.stderr, hq.stdout, hq.stderr, missing.stdout, text.stdout,
                   text.stderr, missing.stderr]  # fmt: skip
        for output in outputs:
            assert SECRET_NAME not in output
        for blob in carried.stored():
            assert SECRET_NAME.encode() not in blob
        return dict(out), laptop.env
    finally:
        laptop.stop()
        desktop.stop()


# --- publication -------------------------------------------------------------------


@pytest.fixture
def node(tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    """A vault of three notes, indexed, with a manifest folder outside it."""
    v = tmp_path / "vault"
    v.mkdir()
    for i in range(3):
        (v / f"n{i}.md").write_text(f"note {i}\n")
    data, folder = tmp_path / "data", tmp_path / "manifests"
    e = env | {"CCC_WATCH_NODE": "laptop", "CCC_WATCH_MANIFEST_DIR": str(folder)}
    assert cli(e, v, data, "scan").returncode == 0
    return {"vault": v, "data": data, "folder": folder, "env": e}


def _run(n: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return cli(n["env"], n["vault"], n["data"], *args)


def test_publishing_twice_is_idempotent(node: dict[str, Any]) -> None:
    """A second publication of an unchanged store writes the same rows, reports none
    changed, and leaves one file, 0600, no temp file."""
    first = _run(node, "manifest", "publish", "--json")
    assert first.returncode == 0, first.stderr
    rows1 = pq.read_table(node["folder"] / "laptop.parquet")
    second = _run(node, "manifest", "publish", "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(first.stdout)[0]["changed"] == 3
    assert json.loads(second.stdout)[0]["changed"] == 0
    rows2 = pq.read_table(node["folder"] / "laptop.parquet")
    assert rows1.replace_schema_metadata(None).equals(rows2.replace_schema_metadata(None))
    assert [p.name for p in node["folder"].iterdir()] == ["laptop.parquet"]
    assert (node["folder"] / "laptop.parquet").stat().st_mode & 0o777 == 0o600
    assert rows2.column("key").to_pylist() == ["n0.md", "n1.md", "n2.md"]


_KILLED_WRITER = """
import sys, time
from pathlib import Path
import pyarrow.parquet as pq
from ccc_watch.nodes import folder as F
from ccc_watch.nodes.carrier import Manifest, ManifestHeader, ROW_SCHEMA
import pyarrow as pa

def slow_write(table, f, **kw):
    f.write(b"PAR1" + b"x" * 100000)  # half a file
    f.flush()
    print("writing", flush=True)
    time.sleep(60)

F.pq.write_table = slow_write
rows = pa.table({n: [] for n in ROW_SCHEMA.names}, schema=ROW_SCHEMA)
h = ManifestHeader("laptop", "outpost", "v", time.time(), 99, None, 0)
F.FolderCarrier(Path(sys.argv[1])).publish(Manifest(h, rows))
"""


def test_a_publisher_killed_mid_write_leaves_the_previous_manifest(node: dict[str, Any]) -> None:
    """SIGKILL during the write of a new manifest: the previous one stays whole and
    readable; the killed writer's temp file is invisible to readers and removed by the
    next publication."""
    assert _run(node, "manifest", "publish").returncode == 0
    before = FolderCarrier(node["folder"]).load("laptop")
    assert before is not None and before.header.records == 3
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(node["folder"])],
        stdout=subprocess.PIPE, env=node["env"] | {"PYTHONPATH": os.getcwd()},
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"writing\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    temps = [p.name for p in node["folder"].iterdir() if p.name.startswith(".")]
    assert len(temps) == 1
    after = FolderCarrier(node["folder"]).load("laptop")
    assert after is not None and after.header == before.header
    assert after.rows.equals(before.rows)
    nodes = _run(node, "nodes", "--json")
    assert [n["records"] for n in json.loads(nodes.stdout)] == [3]
    assert _run(node, "manifest", "publish").returncode == 0
    assert [p.name for p in node["folder"].iterdir()] == ["laptop.parquet"]


def test_no_carrier_says_how_to_set_one(node: dict[str, Any]) -> None:
    """Without manifest_dir (nor hq_url), publish, nodes and drift exit 78 with one
    line naming manifest_dir."""
    env = {k: v for k, v in node["env"].items() if k != "CCC_WATCH_MANIFEST_DIR"}
    for args in (("manifest", "publish"), ("nodes",), ("drift",)):
        got = cli(env, node["vault"], node["data"], *args)
        assert got.returncode == 78, (args, got.stderr)
        lines = got.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("ccc-watch: config: manifest_dir: ")
        assert "CCC_WATCH_MANIFEST_DIR" in lines[0]


def test_manifest_dir_inside_the_vault_is_ignored(node: dict[str, Any]) -> None:
    """A manifest folder inside the vault is skipped by the ignore rules (a built-in rule:
    a `!` pattern cannot bring it back), and only `<node>.parquet` is written there."""
    inside = node["vault"] / "Shared" / "manifests"
    (node["vault"] / ".cccignore").write_text("!Shared/manifests/\n")
    env = node["env"] | {"CCC_WATCH_MANIFEST_DIR": str(inside)}
    assert cli(env, node["vault"], node["data"], "manifest", "publish").returncode == 0
    (inside / "desktop.parquet").write_bytes(b"not a manifest")
    assert cli(env, node["vault"], node["data"], "scan").returncode == 0
    shown = cli(env, node["vault"], node["data"], "manifest", "show").stdout
    assert "manifests" not in shown and "n0.md" in shown
    assert sorted(p.name for p in inside.iterdir()) == ["desktop.parquet", "laptop.parquet"]


def test_secret_notes_without_a_key_are_left_out(node: dict[str, Any]) -> None:
    """manifest_paths = private and no key: the SECRET note is not published at all, and
    one WARNING says so; with manifest_paths = plain it is, by name."""
    (node["vault"] / SECRET_NOTE).write_text("---\nclassification: SECRET\n---\nx\n")
    assert _run(node, "scan").returncode == 0
    got = _run(node, "manifest", "publish")
    assert got.returncode == 0, got.stderr
    assert got.stderr.count("WARNING") == 1 and "SECRET" in got.stderr
    assert SECRET_NAME not in got.stderr
    data = (node["folder"] / "laptop.parquet").read_bytes()
    assert SECRET_NAME.encode() not in data
    assert pq.read_table(node["folder"] / "laptop.parquet").num_rows == 3
    plain = cli(node["env"] | {"CCC_WATCH_MANIFEST_PATHS": "plain"}, node["vault"], node["data"],
                "manifest", "publish")  # fmt: skip
    assert plain.returncode == 0
    assert (
        SECRET_NAME in pq.read_table(node["folder"] / "laptop.parquet").column("key").to_pylist()[0]
    )


def _manifest(node: str, role: str, paths: list[str], written_at: float) -> Manifest:
    rows = pa.table(
        {
            "key": paths, "path": paths, "id": [f"id-{p}" for p in paths],
            "blake3": ["0" * 64] * len(paths), "size": [1] * len(paths),
            "mtime_ns": [1] * len(paths), "record_type": ["note"] * len(paths),
            "classification": ["INTERNAL"] * len(paths),
        },
        schema=ROW_SCHEMA,
    )  # fmt: skip
    return Manifest(ManifestHeader(node, role, "v", written_at, 1, None, len(paths)), rows)


def test_a_stale_node_is_reported_once(node: dict[str, Any]) -> None:
    """Headquarters' manifest is older than stale_after: one `stale` finding, not the
    thousands of differences its rows would make."""
    old = _manifest(
        "desktop", "headquarters", [f"x{i}.md" for i in range(2000)], time.time() - 7200
    )
    FolderCarrier(node["folder"]).publish(old)
    got = _run(node, "drift", "--json", "--stale-after", "3600")
    assert got.returncode == 1, got.stderr
    findings = json.loads(got.stdout)["findings"]
    assert [(f["kind"], f["node"]) for f in findings] == [("stale", "desktop")]
    assert got.stderr.count("DRIFT kind=node-stale") == 1
    nodes = json.loads(_run(node, "nodes", "--json", "--stale-after", "3600").stdout)
    assert [(n["node"], n["stale"]) for n in nodes] == [("desktop", True), ("laptop", False)]
    fresh = _run(node, "drift", "--json")  # the default stale_after: a day
    assert len(json.loads(fresh.stdout)["findings"]) == 2003


def test_agreeing_nodes_exit_0(node: dict[str, Any]) -> None:
    """Two nodes with the same files: no finding, exit 0."""
    assert _run(node, "manifest", "publish").returncode == 0
    mine = FolderCarrier(node["folder"]).load("laptop")
    assert mine is not None
    hq = ManifestHeader("desktop", "headquarters", "w", time.time(), 5, None, mine.header.records)
    FolderCarrier(node["folder"]).publish(Manifest(hq, mine.rows))
    got = _run(node, "drift")
    assert got.returncode == 0, got.stderr
    assert got.stdout == "laptop agrees with desktop\n"
    assert _run(node, "drift", "--missing").stdout == ""
    unknown = _run(node, "drift", "--against", "nobody")
    assert unknown.returncode == 1
    assert unknown.stderr.splitlines() == [
        "ccc-watch: drift: node nobody has published no readable manifest "
        "(`ccc-watch nodes` lists those that have)"
    ]


# --- hostile manifest folders --------------------------------------------------------


def test_hostile_files_are_skipped_with_one_line_each(node: dict[str, Any]) -> None:
    """Other devices' files are hostile: not Parquet, the wrong columns, a header naming
    another node, a row count that lies, a symlink, a folder, a FIFO, a huge file and
    sync engines' conflict copies are each skipped with one log line; the good manifest
    is still read, and nothing raises."""
    folder: Path = node["folder"]
    assert _run(node, "manifest", "publish").returncode == 0
    good = folder / "laptop.parquet"
    (folder / "garbage.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    pq.write_table(pa.table({"a": [1]}), folder / "columns.parquet")
    shutil.copy(good, folder / "impostor.parquet")  # its header says laptop
    m = FolderCarrier(folder).load("laptop")
    assert m is not None
    liar = pq.read_table(good)
    meta = dict(liar.schema.metadata)
    meta[b"ccc-watch.manifest"] = meta[b"ccc-watch.manifest"].replace(b'"laptop"', b'"liar"')
    meta[b"ccc-watch.manifest"] = meta[b"ccc-watch.manifest"].replace(
        b'"records": 3', b'"records": 9'
    )
    pq.write_table(liar.replace_schema_metadata(meta), folder / "liar.parquet")
    os.symlink(good, folder / "link.parquet")
    (folder / "dir.parquet").mkdir()
    os.mkfifo(folder / "fifo.parquet")
    with (folder / "huge.parquet").open("wb") as f:
        f.truncate(600 * 1024 * 1024)  # sparse: larger than any manifest
    shutil.copy(good, folder / "laptop.sync-conflict-20261130-101010-ABCDEFG.parquet")
    shutil.copy(good, folder / "laptop (conflicted copy).parquet")
    (folder / "bad\x1bname.parquet").write_bytes(b"x")

    got = _run(node, "nodes", "--json")
    assert got.returncode == 0, got.stderr
    assert [(n["node"], n["records"]) for n in json.loads(got.stdout)] == [("laptop", 3)]
    skipped = [ln for ln in got.stderr.splitlines() if "skipped" in ln]
    names = ("garbage", "columns", "impostor", "liar", "link", "dir", "fifo", "huge",
             "sync-conflict", "conflicted copy", "bad")  # fmt: skip
    for name in names:
        assert sum(name in ln for ln in skipped) == 1, (name, skipped)
    assert len(skipped) == len(names)
    assert "Traceback" not in got.stderr and "\x1b" not in got.stderr
    for against in ("impostor", "link", "garbage"):
        refused = _run(node, "drift", "--against", against)
        assert refused.returncode == 1
        assert "has published no readable manifest" in refused.stderr.splitlines()[-1]
    # Rows a reader cannot compare: a null key, a key twice (the header is well-formed).
    for name, keys in (("nullkey", [None, "a.md"]), ("twice", ["a.md", "a.md"])):
        h = ManifestHeader(name, "headquarters", "w", time.time(), 1, None, 2)
        rows = pa.table({n: [None, None] for n in ROW_SCHEMA.names}, schema=ROW_SCHEMA)
        rows = rows.set_column(0, "key", pa.array(keys, pa.string()))
        FolderCarrier(folder).publish(Manifest(h, rows))
        refused = _run(node, "drift", "--against", name)
        assert refused.returncode == 1
        last = refused.stderr.splitlines()[-1]
        assert last.startswith(f"ccc-watch: drift: the manifest of node {name} cannot be read")
        assert "Traceback" not in refused.stderr
    both = _run(node, "drift", "--json")  # headquarters' two bad manifests: nothing to compare
    assert both.returncode == 1 and "Traceback" not in both.stderr
    assert both.stderr.splitlines()[-1].startswith(
        "ccc-watch: drift: no manifest of nullkey, twice can be read"
    )


def test_compare_names_renames_and_hostile_names() -> None:
    """In-process compare(): a rename is found by id even when the content changed too,
    hostile names (a newline, a bidi override, ' other=') stay one escaped DRIFT line
    each, and two equal files on each side are no rename."""
    from ccc_watch.nodes.drift import compare

    now = time.time()
    evil = "a\nDRIFT kind=fake path=x\u202e other=y.md"

    def m(node: str, role: str, rows: list[tuple[str, str, str]]) -> Manifest:
        table = pa.table(
            {
                "key": [r[0] for r in rows], "path": [r[0] for r in rows],
                "id": [r[1] for r in rows], "blake3": [r[2] for r in rows],
                "size": [1] * len(rows), "mtime_ns": [1] * len(rows),
                "record_type": ["note"] * len(rows), "classification": ["PUBLIC"] * len(rows),
            },
            schema=ROW_SCHEMA,
        )  # fmt: skip
        return Manifest(ManifestHeader(node, role, "v", now, 1, None, len(rows)), table)

    here = m(
        "a", "outpost", [(evil, "id1", "b1"), ("d1.md", "i2", "same"), ("d2.md", "i3", "same")]
    )
    there = m(
        "b",
        "outpost",
        [("new name.md", "id1", "b2"), ("e1.md", "i4", "same"), ("e2.md", "i5", "same")],
    )
    found = compare(here, there, stale_after=60)
    kinds = sorted((f.kind, f.key, f.other) for f in found)
    assert kinds == [
        ("missing-here", "e1.md", None), ("missing-here", "e2.md", None),
        ("missing-there", "d1.md", None), ("missing-there", "d2.md", None),
        ("renamed", evil, "new name.md"),
    ]  # fmt: skip
    for f in found:
        line = f.drift().line()
        assert "\n" not in line and "\u202e" not in line and line.isprintable()
    rename = next(f for f in found if f.kind == "renamed").drift().line()
    assert rename.startswith('DRIFT kind=node-renamed path="a\\nDRIFT kind=fake')
    assert rename.endswith('detail="node=b other=\\"new name.md\\""')
    assert all(f.authoritative is None for f in found)  # two outposts: no authority


def test_a_failed_publication_is_retried_and_never_ends_the_daemon(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """manifest_dir names a file: each publication fails with one ERROR line in the
    daemon's log, the daemon keeps watching; once the file is gone, the next interval
    publishes, and a later change is published again."""
    v = tmp_path / "vault"
    v.mkdir()
    (v / "a.md").write_text("a\n")
    blocker = tmp_path / "manifests"
    blocker.write_text("in the way\n")
    d = Daemon(v, tmp_path / "data", tmp_path / "log")
    d.env = env | {
        "CCC_WATCH_NODE": "laptop",
        "CCC_WATCH_MANIFEST_DIR": str(blocker),
        "CCC_WATCH_PUBLISH_INTERVAL": "0.5",
    }
    d.start()
    try:
        wait_until(lambda: "manifest publication failed" in d.log.read_text(), "a failure")
        assert d.status()["state"] == "watching"
        line = next(ln for ln in d.log.read_text().splitlines() if "publication failed" in ln)
        assert "ERROR" in line and "manifest_dir" in line and "is not a folder" in line
        blocker.unlink()
        wait_until(lambda: (blocker / "laptop.parquet").exists(), "published after the fix")
        _caught_up(d, FolderCarrier(blocker), "laptop")
        (v / "b.md").write_text("b\n")
        _caught_up(d, FolderCarrier(blocker), "laptop")
        m = FolderCarrier(blocker).load("laptop")
        assert m is not None and m.rows.column("key").to_pylist() == ["a.md", "b.md"]
        assert "Traceback" not in d.log.read_text()
    finally:
        assert d.stop() == 0


def test_an_outpost_without_headquarters_compares_with_every_node(node: dict[str, Any]) -> None:
    """No headquarters: an outpost's drift compares with every other node, and no side
    is authoritative; with no other node at all it says so (exit 1)."""
    lonely = _run(node, "drift")
    assert lonely.returncode == 1
    assert lonely.stderr.splitlines()[-1].startswith("ccc-watch: drift: no other node")
    assert _run(node, "manifest", "publish").returncode == 0
    mine = FolderCarrier(node["folder"]).load("laptop")
    assert mine is not None
    for other, rows in (("phone", mine.rows.slice(1)), ("tablet", mine.rows)):
        h = ManifestHeader(other, "outpost", "w", time.time(), 5, None, rows.num_rows)
        FolderCarrier(node["folder"]).publish(Manifest(h, rows))
    got = _run(node, "drift", "--json")
    assert got.returncode == 1, got.stderr
    out = json.loads(got.stdout)
    assert out["against"] == ["phone", "tablet"]
    assert out["findings"] == [{"kind": "missing-there", "node": "phone", "key": "n0.md"}]


def test_carriers_follow_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """carriers(): the folder for manifest_dir; for hq_url the database carrier, loaded
    only then: without its module, a WARNING and the folder alone; without its driver,
    a ConfigError naming hq_url (exit 78, no traceback)."""
    from ccc_watch import config
    from ccc_watch.errors import ConfigError
    from ccc_watch.nodes.carriers import carriers, require_carriers

    env: dict[str, str] = {}
    file = tmp_path / "absent.toml"  # not the user's config file

    def load(flags: dict[str, str]) -> config.Config:
        return config.load(flags, environ=env, config_file=file, must_exist=False)

    none = load({})
    assert carriers(none) == []
    with pytest.raises(ConfigError, match="manifest_dir"):
        require_carriers(none)
    folder = load({"manifest_dir": str(tmp_path / "m")})
    got = carriers(folder)
    assert len(got) == 1 and isinstance(got[0], FolderCarrier)
    both = load({"manifest_dir": str(tmp_path / "m"), "hq_url": "postgresql://me@localhost/hq"})
    monkeypatch.setitem(sys.modules, "ccc_watch.nodes.postgres", None)  # not installed
    got = carriers(both)
    assert len(got) == 1 and isinstance(got[0], FolderCarrier)
    monkeypatch.delitem(sys.modules, "ccc_watch.nodes.postgres")
    try:
        import ccc_watch.nodes.postgres  # noqa: F401
    except ModuleNotFoundError:
        return  # this branch has no database carrier: its driver cannot be missing
    monkeypatch.delitem(sys.modules, "ccc_watch.nodes.postgres")
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ConfigError, match="hq_url"):
        carriers(both)


def test_the_manifest_is_the_same_from_the_mirror_or_the_store(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """build_manifest takes its rows from the mirror when the mirror is at the store's
    head, else from the store's records: both give the same manifest (notes, an
    attachment, bad frontmatter, a SECRET note's digest, names in other scripts); a
    mirror one change behind is not used."""
    from ccc_watch import config
    from ccc_watch.nodes import manifest as M
    from ccc_watch.store import open_store

    v = tmp_path / "vault"
    (v / "sub dir").mkdir(parents=True)
    (v / "a.md").write_text("---\ntags: [x]\n---\n# A\n")
    (v / "sub dir" / "日本語 ünï.md").write_text("text\n")
    (v / "bad.md").write_text("---\n: [unclosed\n---\nbody\n")
    (v / "pic.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (v / SECRET_NOTE).write_text("---\nclassification: SECRET\n---\nthe plan\n")
    data = tmp_path / "data"
    e = env | {"CCC_WATCH_NODE": "laptop", "CCC_WATCH_KEY_FILE": str(_key(tmp_path, env))}
    assert cli(e, v, data, "scan").returncode == 0
    flags = {"vault": str(v), "data_dir": str(data), "key_file": e["CCC_WATCH_KEY_FILE"]}
    absent = tmp_path / "absent.toml"
    cfg = config.load(flags, environ={}, config_file=absent, must_exist=False)
    used: list[bool] = []
    real = M._from_mirror

    def spy(*args: Any) -> Any:
        rows = real(*args)
        used.append(rows is not None)
        return rows

    monkeypatch.setattr(M, "_from_mirror", spy)

    def built() -> pa.Table:
        with open_store(data, readonly=True) as store:
            return M.build_manifest(cfg, store, now=0.0).rows

    from_mirror = built()
    assert used == [True]
    assert from_mirror.num_rows == 5
    assert any(k.startswith("secret:") for k in from_mirror.column("key").to_pylist())
    old_mirror = (data / "mirror.duckdb").read_bytes()
    (v / "a.md").write_text("---\ntags: [y]\n---\n# A again\n")
    assert cli(e, v, data, "scan").returncode == 0
    current = built()
    assert used == [True, True] and not current.equals(from_mirror)
    (data / "mirror.duckdb").write_bytes(old_mirror)  # one change behind the store
    assert built().equals(current) and used[-1] is False
    (data / "mirror.duckdb").unlink()
    assert built().equals(current) and used[-1] is False
