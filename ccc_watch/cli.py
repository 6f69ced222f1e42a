"""The `ccc-watch` command line: a thin layer over the library.

Each command parses its options and calls one library function; every CccWatchError
becomes one line on stderr and the error's exit code (78 for a bad setting).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ccc_watch import __version__, codec, config, control
from ccc_watch.errors import CccWatchError, StoreMissingError, os_exit_code
from ccc_watch.ignore import IgnoreRules
from ccc_watch.indexer import IndexPolicy
from ccc_watch.procs import running_pid
from ccc_watch.store import Store, open_store, store_file

if TYPE_CHECKING:  # DuckDB and Arrow load only for the commands that use the mirror
    from ccc_watch.mirror import Mirror

Handler = Callable[[argparse.Namespace, config.Config], int]


def _print(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    else:
        width = max(map(len, data), default=0)
        for key, value in data.items():
            print(f"{key:<{width}}  {'-' if value is None else value}")


def cmd_config(args: argparse.Namespace, cfg: config.Config) -> int:
    """Show every setting, its value and where it came from."""
    values = dict(cfg.values)
    if values.get("vault") is not None:
        values["data_dir"] = cfg.resolved_data_dir()
    if args.json:
        _print(
            {"config_file": cfg.config_file, "settings": values, "sources": dict(cfg.sources)},
            as_json=True,
        )
        return 0
    shown = cfg.config_file or f"{config.default_config_file()} (absent: all defaults)"
    _print(
        {"config_file": shown} | {k: f"{v}  [{cfg.sources[k]}]" for k, v in values.items()},
        as_json=False,
    )
    return 0


def cmd_init(args: argparse.Namespace, cfg: config.Config) -> int:
    """Create the store for the vault (idempotent) and say where it is."""
    vault = cfg.require_vault().resolve()
    with open_store(cfg.resolved_data_dir(), backend=cfg.backend, vault_root=vault) as store:
        print(f"store ready: {store.path} ({store.backend.name}, {len(store)} records)")
    return 0


def cmd_info(args: argparse.Namespace, cfg: config.Config) -> int:
    """Describe the vault's store without writing to it (safe while the daemon runs)."""
    store = _read_store(cfg)
    with store:
        data = {
            "store": str(store.path),
            "backend": store.backend.name,
            "size_bytes": store.path.stat().st_size,
            **{f"meta.{k}": v for k, v in sorted(store.meta.items())},
            "records": len(store),
            "changelog_head": store.head(),
        }
    _print(data, args.json)
    return 0


def cmd_check(args: argparse.Namespace, cfg: config.Config) -> int:
    """Verify the store file's checksums (needs the daemon stopped)."""
    data_dir = cfg.resolved_data_dir()
    if not store_file(data_dir, cfg.backend).exists():
        raise StoreMissingError(f"no store yet for {cfg.require_vault()}; run `ccc-watch init`")
    with open_store(
        cfg.resolved_data_dir(), backend=cfg.backend, vault_root=cfg.require_vault().resolve()
    ) as store:
        ok = store.check_integrity()
        print(f"{'ok' if ok else 'DAMAGED (repaired what it could)'}: {store.path}")
    return 0 if ok else 1


def _policy(cfg: config.Config) -> IndexPolicy:
    return IndexPolicy(
        max_note_bytes=cfg.max_note_bytes, default_classification=cfg.default_classification
    )


def cmd_rebuild(args: argparse.Namespace, cfg: config.Config) -> int:
    """Index every file of the vault into a new store and swap it in atomically.

    Exit code 0 when every file got a clean record, 1 when some could not be read
    (they still got a record with the reason, and the rest landed).
    """
    from ccc_watch.rebuild import RebuildReport, rebuild

    vault = cfg.require_vault().resolve()
    data_dir = cfg.resolved_data_dir()
    pid = running_pid(data_dir)
    if pid is not None and not args.dry_run:
        # The daemon does it: it swaps the store it writes to, and loses no event.
        print(f"asking the running daemon (pid {pid}) to rebuild...", file=sys.stderr)
        answer = control.ask(data_dir, pid, {"command": "rebuild"})
        if "error" in answer:
            raise CccWatchError(f"the daemon could not rebuild: {answer['error']}")
        report = RebuildReport(**answer["report"])
    else:
        report = rebuild(
            vault,
            data_dir,
            backend=cfg.backend,
            batch_size=cfg.batch_size,
            policy=_policy(cfg),
            rules=_rules(cfg, vault),
            dry_run=args.dry_run,
        )
        if not report.dry_run:  # the new store's changelog starts again: so does the mirror
            with _read_store(cfg) as store:
                _mirror(cfg).rebuild(store)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        verb = "would index" if report.dry_run else "indexed"
        print(
            f"{verb} {report.indexed} of {report.seen} files in {report.seconds:.2f} s: "
            f"{report.added} new, {report.changed} changed, {report.unchanged} unchanged, "
            f"{report.removed} removed, {len(report.failed)} failed, "
            f"{len(report.skipped)} skipped"
        )
        for item in report.failed:
            print(f"failed: {item['path']}: {item['reason']}")
        for item in report.warnings + report.skipped:
            print(f"note: {item['path']}: {item['reason']}")
        if not report.dry_run:
            print(f"store: {report.store}")
            print(f"mirror: {_mirror(cfg).path}")
    return 1 if report.failed else 0


def _read_store(cfg: config.Config) -> Store:
    data_dir = cfg.resolved_data_dir()
    try:
        return open_store(data_dir, backend=cfg.backend, readonly=True)
    except StoreMissingError:
        raise StoreMissingError(
            f"no store yet for {cfg.require_vault()} at {store_file(data_dir, cfg.backend)}; "
            "run `ccc-watch rebuild` (or `ccc-watch init` for an empty store)"
        ) from None


def cmd_dump(args: argparse.Namespace, cfg: config.Config) -> int:
    """Print every record as one JSON object per line (read-only; safe while the daemon runs)."""
    out = sys.stdout.buffer
    with _read_store(cfg) as store:
        for record in store.records():
            out.write(codec.encode(record) + b"\n")
    out.flush()
    return 0


def cmd_get(args: argparse.Namespace, cfg: config.Config) -> int:
    """Print the record of one vault path as JSON (read-only)."""
    with _read_store(cfg) as store:
        record = store.get(args.path)
    if record is None:
        raise CccWatchError(f"no record for {args.path!r}")
    print(json.dumps(record, indent=2, ensure_ascii=False))
    return 0


def _mirror(cfg: config.Config) -> Mirror:
    from ccc_watch.mirror import Mirror

    return Mirror(cfg.resolved_data_dir(), _policy(cfg))


def cmd_mirror(args: argparse.Namespace, cfg: config.Config) -> int:
    """Bring the DuckDB mirror up to date with the store (or recreate it with --rebuild)."""
    mirror = _mirror(cfg)
    with _read_store(cfg) as store:
        result = mirror.rebuild(store) if args.rebuild else mirror.flush(store)
    verb = "rebuilt" if result.rebuilt else "applied"
    print(
        f"mirror {verb}: {result.applied} changes, watermark {result.watermark}, "
        f"{result.held_seconds:.3f} s: {mirror.path}"
    )
    return 0


def cmd_sql(args: argparse.Namespace, cfg: config.Config) -> int:
    """Run one read-only SQL query against the mirror and print the result."""
    from ccc_watch.sql import run_query

    print(run_query(_mirror(cfg), args.query, args.format), end="")
    return 0


def cmd_export(args: argparse.Namespace, cfg: config.Config) -> int:
    """Write every mirror table as a Parquet file into a folder."""
    from ccc_watch.sql import export_parquet

    for path in export_parquet(_mirror(cfg), args.parquet):
        print(path)
    return 0


def _rules(cfg: config.Config, vault: Path) -> IgnoreRules:
    return IgnoreRules.load(vault, config_dir=cfg.config_dir, patterns=cfg.ignore)


def cmd_scan(args: argparse.Namespace, cfg: config.Config) -> int:
    """Reconcile the store with the vault once (what the daemon does at start-up), then
    bring the mirror up to date. Prints one DRIFT line per difference found."""
    from ccc_watch.indexer import Indexer
    from ccc_watch.reconcile import reconcile

    vault = cfg.require_vault().resolve()
    with open_store(cfg.resolved_data_dir(), backend=cfg.backend, vault_root=vault) as store:
        indexer = Indexer(vault, str(store.meta["vault_id"]), _policy(cfg))
        result = reconcile(
            vault,
            store,
            indexer,
            _rules(cfg, vault),
            offline=True,
            previous_scan_ns=store.meta.get("last_scan_started_ns"),
            batch_size=cfg.batch_size,
        )
        for drift in result.drift:
            print(drift.line())
        print(
            f"scanned {result.seen} files ({result.hashed} read) in {result.seconds:.2f} s: "
            f"{result.changes} changes"
        )
        _mirror(cfg).flush(store)
    return 0


def cmd_verify(args: argparse.Namespace, cfg: config.Config) -> int:
    """Compare every file (hashed in full) with the store, and the store with the mirror.
    Exit 0 when all agree, 1 when not. Read-only: works while the daemon runs."""
    from ccc_watch.verify import verify

    vault = cfg.require_vault().resolve()
    mirror = _mirror(cfg)
    diffs = verify(
        vault,
        cfg.resolved_data_dir(),
        _rules(cfg, vault),
        backend=cfg.backend,
        mirror=mirror if mirror.path.exists() else None,
    )
    if args.json:
        print(json.dumps([d.as_dict() for d in diffs], indent=2, ensure_ascii=False))
    else:
        for d in diffs:
            print(d.line())
        print("verify: clean" if not diffs else f"verify: {len(diffs)} differences")
    return 1 if diffs else 0


def cmd_run(args: argparse.Namespace, cfg: config.Config) -> int:
    """Watch the vault and keep the store and the mirror equal to it, until SIGTERM or
    SIGINT (a second one exits at once). SIGHUP reloads the configuration."""
    from ccc_watch.daemon import Daemon

    return Daemon(cfg).run()


def cmd_status(args: argparse.Namespace, cfg: config.Config) -> int:
    """Whether a daemon runs for this vault, what it is doing, what the store and the
    mirror hold, and a verdict: exit 0 Healthy, 1 Degraded, 2 Unhealthy or not running."""
    from ccc_watch import status

    report = status.report(cfg)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        flat = {k: v for k, v in report.items() if not isinstance(v, dict)}
        for part in ("store", "mirror"):
            flat |= {f"{part} {k}": v for k, v in report[part].items()}
        types = report["records_by_type"] or {}
        flat["records"] = ", ".join(f"{t} {n}" for t, n in types.items()) or None
        _print(flat, as_json=False)
    return status.EXIT[report["health"]]


def cmd_log(args: argparse.Namespace, cfg: config.Config) -> int:
    """Show the daemon's log file (with --since, its rotated files from that time too,
    oldest first), or follow it with -f; --drift keeps only the DRIFT lines."""
    from ccc_watch import logs

    return logs.show(cfg, follow=args.follow, drift=args.drift, since=args.since)


def cmd_service(args: argparse.Namespace, cfg: config.Config) -> int:
    """Install, remove or inspect the service that runs `ccc-watch run` at login (a
    systemd user unit, a launchd agent or a Windows scheduled task), given an explicit
    config file that names the vault; without an action, print what install would
    write and where."""
    from ccc_watch import service

    return service.run(
        args.action,
        cfg,
        platform=args.platform,
        name=args.name,
        explicit_config=getattr(args, "config", None),
    )


COMMANDS: dict[str, tuple[Handler, str]] = {
    "config": (cmd_config, "show the resolved settings and where each came from"),
    "init": (cmd_init, "create the vault's store (idempotent)"),
    "info": (cmd_info, "describe the vault's store, read-only"),
    "check": (cmd_check, "verify the store's checksums (daemon stopped)"),
    "rebuild": (cmd_rebuild, "index every file into a new store, swapped in atomically"),
    "dump": (cmd_dump, "print every record as JSON lines"),
    "get": (cmd_get, "print one record as JSON"),
    "mirror": (cmd_mirror, "apply the store's changes to the DuckDB mirror"),
    "sql": (cmd_sql, "run a read-only SQL query against the mirror"),
    "export": (cmd_export, "write the mirror's tables as Parquet files"),
    "run": (cmd_run, "watch the vault and keep the store and the mirror up to date"),
    "status": (cmd_status, "is a daemon running for this vault, and in what state"),
    "scan": (cmd_scan, "reconcile the store with the vault once, then the mirror"),
    "verify": (cmd_verify, "compare files, store and mirror in full; exit 1 on a difference"),
    "log": (cmd_log, "show or follow the daemon's log file, or only its DRIFT lines"),
    "service": (cmd_service, "install or remove the login service (systemd, launchd, Windows)"),
}


def _settings_parser() -> argparse.ArgumentParser:
    # SUPPRESS: a flag not given sets nothing, so the same flags can stand before or
    # after the command without one side's default overwriting the other's value.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML config file (env CCC_WATCH_CONFIG)"
    )
    for s in config.SETTINGS:
        common.add_argument(
            s.flag, dest=s.key, metavar=s.key.upper(), help=f"{s.help} (env {s.env})"
        )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per entry of COMMANDS."""
    common = _settings_parser()
    parser = argparse.ArgumentParser(
        prog="ccc-watch",
        description="Keep a redb index and a DuckDB mirror of an Obsidian vault.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"ccc-watch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (handler, help_text) in COMMANDS.items():
        p = sub.add_parser(
            name,
            parents=[common],
            help=help_text,
            description=(handler.__doc__ or help_text).strip(),
        )
        if name in ("config", "info", "rebuild", "verify", "status"):
            p.add_argument("--json", action="store_true", help="print JSON")
        if name == "rebuild":
            p.add_argument(
                "--dry-run", action="store_true", help="report what would change without writing"
            )
        if name == "get":
            p.add_argument("path", help="the note's vault-relative path")
        if name == "mirror":
            p.add_argument(
                "--rebuild",
                action="store_true",
                help="recreate the mirror from the store (new file, atomic swap)",
            )
        if name == "sql":
            p.add_argument("query", help='one SQL query, e.g. "SELECT * FROM tag_counts"')
            p.add_argument(
                "--format",
                choices=("table", "json", "csv"),
                default="table",
                help="output format (json: one array of objects)",
            )
        if name == "export":
            p.add_argument(
                "--parquet",
                type=Path,
                required=True,
                metavar="DIR",
                help="folder to write <table>.parquet files into",
            )
        if name == "log":
            from ccc_watch.logs import since_arg

            p.add_argument("-f", "--follow", action="store_true", help="follow it, like tail -F")
            p.add_argument("--drift", action="store_true", help="only the DRIFT lines")
            p.add_argument(
                "--since",
                type=since_arg,
                metavar="TIME",
                help="from TIME on, rotated files included: 10m, 2h, 1d, 2026-11-27T14:30",
            )
        if name == "service":
            from ccc_watch import service

            p.add_argument(
                "action",
                nargs="?",
                choices=service.ACTIONS,
                default="print",
                help="install (and start), uninstall, status, or print (default): the "
                "rendered file and where it would go",
            )
            p.add_argument(
                "--platform",
                choices=service.PLATFORMS,
                help="the service manager (default: this OS's)",
            )
            p.add_argument(
                "--name",
                help="one of several vaults: its own unit (ccc-watch@NAME.service), label "
                "or task, and config file NAME.toml beside config.toml",
            )
        p.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ccc-watch` console script."""
    args = build_parser().parse_args(argv)
    try:
        flags = {s.key: getattr(args, s.key, None) for s in config.SETTINGS}
        cfg = config.load(
            flags,
            config_file=getattr(args, "config", None),
            must_exist=args.command != "service",  # `service install` may create it
        )
        from ccc_watch import logs

        logs.setup(cfg, command=args.command)  # stderr; for `run` also the log file
        handler: Handler = args.handler
        return handler(args, cfg)
    except CccWatchError as e:
        print(f"ccc-watch: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # a file no library call wrapped (full disk, permission): one line
        print(f"ccc-watch: {e}", file=sys.stderr)
        return os_exit_code(e)


if __name__ == "__main__":
    sys.exit(main())
