"""A real PostgreSQL server for tests: Debian's binaries, a cluster in a temporary
folder, reachable only through a unix socket there (no TCP port is opened).

CI runs as root and the server refuses to run as root, so as root the cluster belongs
to the `postgres` user (runuser); elsewhere to the user running the tests. Without the
binaries a test that needs the server skips and says why, except on CI
(CCC_WATCH_CI=1, set by .ci/run, which installs them), where that is a failure.

The cluster's pg_hba.conf trusts the superuser on the socket and asks every other role
for its password (scram-sha-256), so the password file and PGPASSWORD are really used.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

ROLE = "ccc_outpost"


def binaries() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin holding initdb and pg_ctl, else the
    folder of an initdb on PATH, else None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CCC_WATCH_CI"):
        pytest.fail(f"CI must have PostgreSQL ({reason}): .ci/run installs it")
    pytest.skip(f"needs PostgreSQL's server binaries: {reason} (apt-get install postgresql)")


@dataclass
class Server:
    """A running cluster: its socket folder and the role that may log in with a password."""

    bin: Path
    root: Path  # the temporary folder: data/ and the socket
    owner: str | None  # the OS user the server runs as (None: this user)
    password: str
    ca: Path | None = None  # with tls: the CA that signed the server's certificate
    port: int = 5432

    @property
    def socket_dir(self) -> Path:
        return self.root

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str, user: str = ROLE) -> str:
        """A postgresql:// URL for dbname as user, over the socket; it holds no password."""
        return (
            f"postgresql://{quote(user)}@/{quote(dbname)}?host={quote(str(self.socket_dir))}"
            f"&port={self.port}"
        )

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection (trusted on the socket), in autocommit."""
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            dbname=dbname,
            user="postgres",
            autocommit=True,
        )

    def new_database(self) -> str:
        """A fresh, empty database owned by ROLE; its name."""
        name = "ccc_" + uuid.uuid4().hex[:12]
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{ROLE}"')
        return name

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.owner is not None:
            cmd = ["runuser", "-u", self.owner, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)

    def stop(self) -> None:
        self.run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")


def tls_files(folder: Path, owner: str | None) -> tuple[Path, int]:
    """A throw-away CA (folder/ca.pem) and a server certificate for localhost and
    127.0.0.1 signed by it (server.crt, server.key 0600, owned by the server's user);
    returns the CA's path and a free TCP port on 127.0.0.1."""
    import datetime
    import ipaddress
    import socket

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
             signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:  # fmt: skip
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = cert("ccc test CA", ca_key, "ccc test CA", ca_key, True)
    server = cert("localhost", server_key, "ccc test CA", ca_key, False)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.crt").write_bytes(server.public_bytes(pem))
    key_path = folder / "server.key"
    key_path.write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key_path.chmod(0o600)
    if owner is not None:
        for name in ("server.crt", "server.key"):
            shutil.chown(folder / name, user=owner)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    return folder / "ca.pem", port


def start(tls: bool = False) -> Server:
    """Create and start a cluster; the caller stops it (Server.stop) and removes root.
    With tls, it also listens on 127.0.0.1 (Server.port), TLS only (hostssl), with a
    certificate from a throw-away CA (Server.ca)."""
    bin_dir = binaries()
    if bin_dir is None or not (bin_dir / "pg_ctl").exists():
        skip_or_fail("no initdb/pg_ctl under /usr/lib/postgresql/*/bin or on PATH")
    assert bin_dir is not None
    owner = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            skip_or_fail("running as root and there is no `postgres` user to run the server")
        owner = "postgres"
    # Short: a unix socket path has a ~100-byte limit.
    root = Path(tempfile.mkdtemp(prefix="ccc-pg-"))
    if owner is not None:
        shutil.chown(root, user=owner)
    server = Server(bin_dir, root, owner, password="pw-" + uuid.uuid4().hex)
    init = server.run(
        "initdb", "-D", str(server.data), "-U", "postgres", "--auth=trust",
        "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
    )  # fmt: skip
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {init.stderr.strip()}")
    hba = "local all postgres trust\nlocal all all scram-sha-256\n"
    opts = f"-k {root} -c listen_addresses='' -c fsync=off -c max_connections=40"
    if tls:
        server.ca, server.port = tls_files(root, owner)
        hba += "hostssl all all 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 reject\n"
        opts = (
            f"-k {root} -c listen_addresses=127.0.0.1 -p {server.port} -c fsync=off "
            f"-c ssl=on -c ssl_cert_file={root}/server.crt -c ssl_key_file={root}/server.key"
        )
    (server.data / "pg_hba.conf").write_text(hba)
    up = server.run(
        "pg_ctl", "start", "-D", str(server.data), "-w", "-t", "60",
        "-l", str(root / "server.log"), "-o", opts,
    )  # fmt: skip
    if up.returncode != 0:
        log = (
            (root / "server.log").read_text(errors="replace")
            if (root / "server.log").exists()
            else ""
        )
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"pg_ctl start failed: {up.stderr.strip()} {log[-2000:]}")
    with server.admin() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(server.password)
            )
        )
    return server
