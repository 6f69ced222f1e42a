"""The database carrier: every node's manifest in one PostgreSQL database.

Two tables (created when absent, under a schema version in `ccc_schema`):

- `ccc_nodes`: one row per node, its manifest header (role, vault id, written at, the
  head of its history, how many rows), and when the server took it (`published_at`);
- `ccc_manifest`: one row per node and record key, ROW_SCHEMA's columns plus `digest`,
  a digest of the row's other columns that publish() compares to write only what
  changed.

Rows are keyed by (node, key), not by vault id: each node's store draws its own vault
id, so copies of one vault have different ones. One database (or one schema, chosen
with the URL's `options=-csearch_path=...`) holds the nodes of one shared vault.

A publication is ONE transaction: it takes the node's advisory lock, reads the node's
(key, digest) pairs, deletes the rows gone, writes the new and changed ones (COPY into
a temporary table merged with INSERT ... ON CONFLICT when there are many, a pipelined
INSERT ... ON CONFLICT when few) and writes the header last. A publisher killed
anywhere in it leaves the previous manifest whole: the server rolls the transaction
back. Every statement is parameterised (node names and paths are hostile text).

Headquarters compares nodes on the server: diff() is the join nodes/drift.py makes in
DuckDB for Parquet manifests, drift() the whole report by the same rules, in SQL.

The password comes from `hq_password_file` (a regular file, mode 0600 or stricter,
read once) or else from libpq's own sources (PGPASSWORD, ~/.pgpass, PGPASSFILE). The
URL never holds one (config refuses it), so the server named in messages is secret-free.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pyarrow as pa
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ccc_watch.config import Config
from ccc_watch.errors import (
    EXIT_NOPERM,
    EXIT_SOFTWARE,
    EXIT_TEMPFAIL,
    EXIT_UNAVAILABLE,
    ConfigError,
    HeadquartersError,
)
from ccc_watch.log.drift import CONFLICT_PATTERNS
from ccc_watch.log.safe import shown
from ccc_watch.nodes.carrier import (
    ROW_SCHEMA,
    Carrier,
    Manifest,
    ManifestHeader,
    PublishReport,
)

SCHEMA_VERSION = 1
# pg_advisory_xact_lock(class, id): the schema's creation, and one node's publication.
_LOCK_CLASS = 0x43C3  # "CC"
# Up to this many changed rows go as one pipelined INSERT ... ON CONFLICT; more go by
# COPY into a temporary table and one merge (bench/postgres_bench.py --changed N: at
# 100,000 rows pipelined won at 500 changed, 0.46 s to 0.51 s; the merge at 2,000, 0.99 s
# to 1.08 s and 0.86 s to 1.11 s).
_FEW = 1000

_COLUMNS = [f.name for f in ROW_SCHEMA]  # key, path, id, blake3, size, mtime_ns, ...

_DDL = [
    """CREATE TABLE IF NOT EXISTS ccc_nodes (
        node text PRIMARY KEY,
        role text NOT NULL,
        vault_id text NOT NULL,
        written_at double precision NOT NULL,
        head_seq bigint NOT NULL,
        head_hash text,
        records bigint NOT NULL,
        published_at timestamptz NOT NULL DEFAULT now()
    )""",
    """CREATE TABLE IF NOT EXISTS ccc_manifest (
        node text NOT NULL,
        key text NOT NULL,
        path text,
        id text,
        blake3 text,
        size bigint,
        mtime_ns bigint,
        record_type text,
        classification text,
        digest bytea NOT NULL,
        PRIMARY KEY (node, key)
    )""",
    "CREATE INDEX IF NOT EXISTS ccc_manifest_node_id ON ccc_manifest (node, id)",
]

_UPSERT = sql.SQL(
    "INSERT INTO ccc_manifest (node, {cols}, digest) VALUES (%s, {marks}, %s) "
    "ON CONFLICT (node, key) DO UPDATE SET {sets}"
).format(
    cols=sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)),
    marks=sql.SQL(", ").join(sql.Placeholder() * len(_COLUMNS)),
    sets=sql.SQL(", ").join(
        sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in [*_COLUMNS, "digest"]
    ),
)
_MERGE = sql.SQL(
    "INSERT INTO ccc_manifest (node, {cols}, digest) SELECT %s, {cols}, digest FROM ccc_incoming "
    "ON CONFLICT (node, key) DO UPDATE SET {sets}"
).format(
    cols=sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)),
    sets=sql.SQL(", ").join(
        sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in [*_COLUMNS, "digest"]
    ),
)
_COPY_INCOMING = sql.SQL("COPY ccc_incoming ({cols}, digest) FROM STDIN").format(
    cols=sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
)


def row_digest(row: tuple[Any, ...]) -> bytes:
    """16 bytes that change when any column of a ROW_SCHEMA row does (null != "")."""
    return hashlib.blake2b(orjson.dumps(row), digest_size=16).digest()


def read_password_file(path: Path) -> str:
    """The password in path: a regular file only its owner may read (0600 or stricter);
    its first line, without the line end. A ConfigError names the file and the fix."""
    key = "hq_password_file"
    try:
        st = os.stat(path)
    except OSError as e:
        raise ConfigError(key, f"cannot read {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(key, f"{path} is not a regular file")
    if st.st_mode & 0o077:
        raise ConfigError(
            key,
            f"{path} may be read by others (mode {stat.S_IMODE(st.st_mode):04o}): "
            f"`chmod 600 {path}`",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(key, f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    password = text.split("\n", 1)[0].rstrip("\r")
    if not password:
        raise ConfigError(key, f"{path} is empty: write the password on its first line")
    return password


def server_name(url: str) -> str:
    """user@host[:port]/dbname of a URL, for messages (a URL here holds no password)."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "(an unreadable hq_url)"
    host = str(info.get("host") or os.environ.get("PGHOST") or "localhost")
    port = info.get("port")
    user = str(info.get("user") or "")
    where = f"{host}:{port}" if port else host
    return shown(f"{user + '@' if user else ''}{where}/{info.get('dbname') or user or ''}")


def _cause(err: psycopg.Error) -> tuple[str, str]:
    """The server's or libpq's reason for err, as one line, and what to do about it."""
    text = str(err).strip()
    for prefix in ("connection failed: ", "connection is bad: "):
        text = text.removeprefix(prefix)
    if " failed: " in text and text.startswith("connection to server"):
        text = text.split(" failed: ", 1)[1]  # drop "connection to server on socket ..."
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    text = text.removeprefix("FATAL:").strip()
    low = text.lower()
    if "password" in low or "authentication" in low:
        fix = "check the role and its password (hq_password_file, PGPASSWORD or ~/.pgpass)"
    elif "ssl" in low or "certificate" in low or "encryption" in low:
        fix = "check hq_url's sslmode and sslrootcert against the server's certificate"
    elif "does not exist" in low:
        fix = "create it on the server, or correct hq_url"
    elif isinstance(err, psycopg.errors.LockNotAvailable):
        text = "another publisher of this node holds its lock"
        fix = "is a second installation using the same node name? try again later"
    elif isinstance(err, psycopg.errors.InsufficientPrivilege):
        fix = "grant this role the rights the README's PostgreSQL section lists"
    elif not isinstance(err, psycopg.OperationalError):
        fix = "a bug in ccc-watch, or its tables were changed by hand"
    else:
        fix = "is the server running and reachable from here?"
    return shown(text), fix


def carrier(cfg: Config) -> PostgresCarrier:
    """The database carrier the settings name (hq_url, hq_password_file)."""
    if cfg.hq_url is None:
        raise ConfigError("hq_url", "is not set: name headquarters' PostgreSQL database")
    return PostgresCarrier(cfg.hq_url, cfg.hq_password_file)


class PostgresCarrier:
    """Manifests in a PostgreSQL database (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        password_file: Path | None = None,
        *,
        connect_timeout: int = 10,
        lock_timeout: float = 60.0,
    ) -> None:
        try:
            conninfo_to_dict(url)
        except psycopg.Error as e:
            raise ConfigError("hq_url", f"libpq cannot read it: {shown(e)}") from None
        self.url = url
        self.where = server_name(url)
        # Read once, here: a file changed later is read by the next carrier.
        self._password = None if password_file is None else read_password_file(password_file)
        self._timeout = connect_timeout
        # How long publish() waits for another publisher of the same node (two
        # installations given one node name) before it gives up, exit 75.
        self._lock_timeout = lock_timeout
        self._schema_ok = False

    # -- connections and errors -------------------------------------------------------

    def _fail(self, err: psycopg.Error) -> HeadquartersError:
        cause, fix = _cause(err)
        code = EXIT_UNAVAILABLE
        if isinstance(err, psycopg.errors.InsufficientPrivilege):
            code = EXIT_NOPERM
        elif isinstance(err, psycopg.errors.LockNotAvailable):
            code = EXIT_TEMPFAIL
        elif not isinstance(err, psycopg.OperationalError):
            code = EXIT_SOFTWARE  # a statement of ours the server refused: a bug
        message = f"headquarters database {self.where}: {cause}; {fix}"
        return HeadquartersError(message, exit_code=code)

    @contextmanager
    def _connect(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """A connection with the schema in place; every psycopg error met while it is
        open (connecting included) leaves as one HeadquartersError."""
        kwargs: dict[str, Any] = {"application_name": "ccc-watch", "autocommit": False}
        if self._password is not None:
            kwargs["password"] = self._password
        try:
            if "connect_timeout" not in conninfo_to_dict(self.url):
                kwargs["connect_timeout"] = self._timeout
            conn = psycopg.connect(self.url, **kwargs)
        except psycopg.Error as e:
            raise self._fail(e) from None
        try:
            with conn:
                if not self._schema_ok:
                    self._ensure_schema(conn)
                yield conn
        except psycopg.Error as e:
            raise self._fail(e) from None

    def _ensure_schema(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        """Create the tables when absent (once, however many outposts start together);
        refuse a database a newer ccc-watch laid out."""
        version = self._schema_version(conn)
        if version is None:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (_LOCK_CLASS,))
                conn.execute("CREATE TABLE IF NOT EXISTS ccc_schema (version integer NOT NULL)")
                row = conn.execute("SELECT max(version) FROM ccc_schema").fetchone()
                version = None if row is None else row[0]
                if version is None:
                    for ddl in _DDL:
                        conn.execute(ddl)
                    conn.execute("INSERT INTO ccc_schema VALUES (%s)", (SCHEMA_VERSION,))
                    version = SCHEMA_VERSION
        if version > SCHEMA_VERSION:
            raise HeadquartersError(
                f"headquarters database {self.where}: its tables are of schema version "
                f"{version}, newer than this ccc-watch's ({SCHEMA_VERSION}): upgrade ccc-watch"
            )
        self._schema_ok = True

    @staticmethod
    def _schema_version(conn: psycopg.Connection[tuple[Any, ...]]) -> int | None:
        with conn.transaction():
            row = conn.execute("SELECT to_regclass('ccc_schema') IS NOT NULL").fetchone()
            if not row or not row[0]:
                return None
            found = conn.execute("SELECT max(version) FROM ccc_schema").fetchone()
        return None if found is None or found[0] is None else int(found[0])

    # -- the Carrier protocol ---------------------------------------------------------

    def publish(self, manifest: Manifest) -> PublishReport:
        """Write this node's manifest in one transaction, only the rows that changed."""
        start = time.perf_counter()
        header = manifest.header
        table = manifest.rows.select(_COLUMNS)
        columns = [table.column(c).to_pylist() for c in _COLUMNS]
        rows = list(zip(*columns, strict=True))
        mine = {row[0]: (row, row_digest(row)) for row in rows}
        with self._connect() as conn, conn.transaction():
            conn.execute(
                "SELECT set_config('lock_timeout', %s, true)",
                (f"{max(1, int(self._lock_timeout * 1000))}ms",),
            )
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, header.node)
            )
            have: dict[str, bytes] = {
                key: bytes(digest)
                for key, digest in conn.execute(
                    "SELECT key, digest FROM ccc_manifest WHERE node = %s", (header.node,)
                )
            }
            gone = [key for key in have if key not in mine]
            changed = [(row, d) for key, (row, d) in mine.items() if have.get(key) != d]
            if gone:
                conn.execute(
                    "DELETE FROM ccc_manifest WHERE node = %s AND key = ANY(%s)",
                    (header.node, gone),
                )
            # Never COPY into ccc_manifest itself: PostgreSQL refuses COPY FROM into a
            # table under row-level security, which a role per outpost uses (README).
            if len(changed) > _FEW:
                conn.execute(
                    sql.SQL(
                        "CREATE TEMPORARY TABLE ccc_incoming ON COMMIT DROP AS "
                        "SELECT {}, digest FROM ccc_manifest WITH NO DATA"
                    ).format(sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)))
                )
                with conn.cursor().copy(_COPY_INCOMING) as copy:
                    for row, d in changed:
                        copy.write_row((*row, d))
                conn.execute(_MERGE, (header.node,))
            elif changed:
                with conn.cursor() as cur:
                    cur.executemany(_UPSERT, [(header.node, *row, d) for row, d in changed])
            conn.execute(
                "INSERT INTO ccc_nodes (node, role, vault_id, written_at, head_seq, head_hash, "
                "records, published_at) VALUES (%s, %s, %s, %s, %s, %s, %s, now()) "
                "ON CONFLICT (node) DO UPDATE SET role = EXCLUDED.role, "
                "vault_id = EXCLUDED.vault_id, written_at = EXCLUDED.written_at, "
                "head_seq = EXCLUDED.head_seq, head_hash = EXCLUDED.head_hash, "
                "records = EXCLUDED.records, published_at = now()",
                (
                    header.node,
                    header.role,
                    header.vault_id,
                    header.written_at,
                    header.head_seq,
                    header.head_hash,
                    header.records,
                ),
            )
        return PublishReport(
            node=header.node,
            where=self.where,
            rows=len(rows),
            changed=len(changed) + len(gone),
            seconds=time.perf_counter() - start,
        )

    def headers(self) -> list[ManifestHeader]:
        """Every node's header, by node name."""
        with self._connect() as conn, conn.transaction():
            found = conn.execute(
                "SELECT node, role, vault_id, written_at, head_seq, head_hash, records "
                'FROM ccc_nodes ORDER BY node COLLATE "C"'
            ).fetchall()
        return [_header(row) for row in found]

    def load(self, node: str) -> Manifest | None:
        """One node's manifest (its header and rows read in one snapshot), or None."""
        with self._connect() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                head = conn.execute(
                    "SELECT node, role, vault_id, written_at, head_seq, head_hash, records "
                    "FROM ccc_nodes WHERE node = %s",
                    (node,),
                ).fetchone()
                if head is None:
                    return None
                with conn.cursor(binary=True) as cur:
                    cur.execute(
                        sql.SQL(
                            'SELECT {} FROM ccc_manifest WHERE node = %s ORDER BY key COLLATE "C"'
                        ).format(sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))),
                        (node,),
                    )
                    found = cur.fetchall()
        columns = list(zip(*found, strict=True)) if found else [() for _ in _COLUMNS]
        table = pa.Table.from_arrays(
            [pa.array(list(col), type=f.type) for col, f in zip(columns, ROW_SCHEMA, strict=True)],
            schema=ROW_SCHEMA,
        )
        return Manifest(_header(head), table)

    # -- drift on the server ----------------------------------------------------------

    def diff(self, here: str, there: str) -> pa.Table:
        """The rows where two nodes' manifests differ, joined on the server by one SQL
        query: the table ccc_watch.nodes.drift's DuckDB join yields for two Parquet
        manifests (DIFF_SCHEMA: key, whether here / there has it, both sides' path, id,
        blake3 and mtime_ns), sorted by key in code point order, so that the same
        classification (conflicts, renames, newer side, stale) serves both carriers."""
        with self._connect() as conn, conn.transaction(), conn.cursor(binary=True) as cur:
            cur.execute(_DIFF, {"a": here, "b": there})
            found = cur.fetchall()
        columns = list(zip(*found, strict=True)) if found else [() for _ in DIFF_SCHEMA]
        return pa.Table.from_arrays(
            [pa.array(list(c), type=f.type) for c, f in zip(columns, DIFF_SCHEMA, strict=True)],
            schema=DIFF_SCHEMA,
        )

    def drift(
        self, here: str, there: str, *, stale_after: float, now: float | None = None
    ) -> list[dict[str, Any]]:
        """The findings of node `here` against node `there`, by one SQL query on the
        server, in the shape of ccc_watch.nodes.drift's Finding.as_dict() (the folder
        carrier's comparison) and by its rules:

        - stale: `there`'s manifest is older than stale_after: that one finding alone;
        - conflict: a sync engine's conflict copy (Syncthing, Obsidian Sync, Dropbox
          names, as log.drift.conflict_original) that differs, `side` here/there/both;
        - differs: both have the key with other content; `newer` the side with the
          newer mtime (absent when equal), `authoritative` headquarters' node when one
          side is headquarters and the other not;
        - renamed: a key only here and a key only there with one id (found once on each
          side), else with one blake3; `key` here's, `other` there's;
        - missing-here / missing-there: the rest.

        Sorted by kind (that order: stale, missing-here, missing-there, differs,
        renamed, conflict) then key in code point order. A ValueError when either node
        never published."""
        params = {
            "a": here,
            "b": there,
            "stale_after": stale_after,
            "now": time.time() if now is None else now,
        }
        with self._connect() as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                known = {
                    node
                    for (node,) in conn.execute(
                        "SELECT node FROM ccc_nodes WHERE node = ANY(%s)", ([here, there],)
                    )
                }
                found = (
                    conn.execute(_DRIFT, params).fetchall()
                    if len(known) == len({here, there})
                    else None
                )
        if found is None:
            absent = sorted({here, there} - known)
            raise ValueError(f"no manifest published by {', '.join(map(shown, absent))}")
        names = ("kind", "node", "key", "other", "newer", "authoritative", "side", "age")
        return [{k: v for k, v in zip(names, row, strict=True) if v is not None} for row in found]


DIFF_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("here", pa.bool_()),
        ("there", pa.bool_()),
        ("hpath", pa.string()),
        ("tpath", pa.string()),
        ("hid", pa.string()),
        ("tid", pa.string()),
        ("hb", pa.string()),
        ("tb", pa.string()),
        ("hm", pa.int64()),
        ("tm", pa.int64()),
    ]
)

_DIFF = """
SELECT coalesce(h.key, t.key) AS key,
       h.key IS NOT NULL AS here, t.key IS NOT NULL AS there,
       h.path AS hpath, t.path AS tpath, h.id AS hid, t.id AS tid,
       h.blake3 AS hb, t.blake3 AS tb, h.mtime_ns AS hm, t.mtime_ns AS tm
FROM (SELECT * FROM ccc_manifest WHERE node = %(a)s) AS h
FULL OUTER JOIN (SELECT * FROM ccc_manifest WHERE node = %(b)s) AS t ON h.key = t.key
WHERE h.key IS NULL OR t.key IS NULL OR h.blake3 IS DISTINCT FROM t.blake3
ORDER BY coalesce(h.key, t.key) COLLATE "C"
"""

# Conflict copies: log.drift's CONFLICT_PATTERNS without their group names, matched
# against the name after the last "/" (in PostgreSQL "." matches a newline too, as with
# re.DOTALL; ~* ignores case).
if any("'" in p for p, _ in CONFLICT_PATTERNS):
    raise ValueError("a conflict pattern with a quote cannot be a SQL literal")
_IS_CONFLICT = " OR ".join(
    f"name {'~*' if icase else '~'} '{re.sub(r'[(][?]P<[a-z]+>', '(', p)}'"
    for p, icase in CONFLICT_PATTERNS
)

_DRIFT = f"""
WITH hn AS (SELECT node, role FROM ccc_nodes WHERE node = %(a)s),
tn AS (SELECT node, role, written_at FROM ccc_nodes WHERE node = %(b)s),
stale AS (SELECT node, round((%(now)s - written_at)::numeric, 1)::float8 AS age FROM tn
          WHERE %(now)s - written_at > %(stale_after)s),
auth AS (SELECT CASE WHEN tn.role = 'headquarters' AND hn.role <> 'headquarters' THEN tn.node
                     WHEN hn.role = 'headquarters' AND tn.role <> 'headquarters' THEN hn.node
                END AS node FROM hn, tn),
d AS (
  SELECT coalesce(h.key, t.key) AS key, h.key IS NOT NULL AS here, t.key IS NOT NULL AS there,
         h.id AS hid, t.id AS tid, h.blake3 AS hb, t.blake3 AS tb,
         coalesce(h.mtime_ns, 0) AS hm, coalesce(t.mtime_ns, 0) AS tm
  FROM (SELECT * FROM ccc_manifest WHERE node = %(a)s) AS h
  FULL OUTER JOIN (SELECT * FROM ccc_manifest WHERE node = %(b)s) AS t ON h.key = t.key
  WHERE NOT EXISTS (SELECT 1 FROM stale)
    AND (h.key IS NULL OR t.key IS NULL OR h.blake3 IS DISTINCT FROM t.blake3)),
c AS (
  SELECT d.*, ({_IS_CONFLICT}) AS conflict
  FROM d, LATERAL (SELECT regexp_replace(d.key, '^.*/', '') AS name) AS n),
oh AS (SELECT key, hid, hb FROM c WHERE NOT conflict AND here AND NOT there),
ot AS (SELECT key, tid, tb FROM c WHERE NOT conflict AND there AND NOT here),
r1 AS (
  SELECT oh.key AS hk, ot.key AS tk FROM oh JOIN ot ON oh.hid = ot.tid
  WHERE oh.hid IN (SELECT hid FROM oh WHERE hid IS NOT NULL GROUP BY hid HAVING count(*) = 1)
    AND ot.tid IN (SELECT tid FROM ot WHERE tid IS NOT NULL GROUP BY tid HAVING count(*) = 1)),
oh2 AS (SELECT * FROM oh WHERE key NOT IN (SELECT hk FROM r1)),
ot2 AS (SELECT * FROM ot WHERE key NOT IN (SELECT tk FROM r1)),
r2 AS (
  SELECT oh2.key AS hk, ot2.key AS tk FROM oh2 JOIN ot2 ON oh2.hb = ot2.tb
  WHERE oh2.hb IN (SELECT hb FROM oh2 WHERE hb IS NOT NULL GROUP BY hb HAVING count(*) = 1)
    AND ot2.tb IN (SELECT tb FROM ot2 WHERE tb IS NOT NULL GROUP BY tb HAVING count(*) = 1)),
r AS (SELECT * FROM r1 UNION ALL SELECT * FROM r2),
found (rank, kind, key, other, newer, authoritative, side, age) AS (
  SELECT 0, 'stale', node, NULL, NULL, NULL, NULL, age FROM stale
  UNION ALL
  SELECT 1, 'missing-here', key, NULL, NULL, NULL, NULL, NULL::float8 FROM ot2
  WHERE key NOT IN (SELECT tk FROM r2)
  UNION ALL
  SELECT 2, 'missing-there', key, NULL, NULL, NULL, NULL, NULL FROM oh2
  WHERE key NOT IN (SELECT hk FROM r2)
  UNION ALL
  SELECT 3, 'differs', key, NULL,
         CASE WHEN hm > tm THEN 'here' WHEN tm > hm THEN 'there' END,
         (SELECT node FROM auth), NULL, NULL
  FROM c WHERE NOT conflict AND here AND there
  UNION ALL
  SELECT 4, 'renamed', hk, tk, NULL, NULL, NULL, NULL FROM r
  UNION ALL
  SELECT 5, 'conflict', key, NULL, NULL, NULL,
         CASE WHEN here AND there THEN 'both' WHEN here THEN 'here' ELSE 'there' END, NULL
  FROM c WHERE conflict)
SELECT kind, %(b)s, key, other, newer, authoritative, side, age FROM found
ORDER BY rank, key COLLATE "C"
"""


def _header(row: tuple[Any, ...]) -> ManifestHeader:
    node, role, vault_id, written_at, head_seq, head_hash, records = row
    return ManifestHeader(
        node=node,
        role=role,
        vault_id=vault_id,
        written_at=float(written_at),
        head_seq=int(head_seq),
        head_hash=head_hash,
        records=int(records),
    )


def _is_a_carrier(carrier: PostgresCarrier) -> Carrier:
    """Nothing at run time: mypy checks here that PostgresCarrier keeps to Carrier."""
    return carrier
