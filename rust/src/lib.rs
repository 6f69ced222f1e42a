//! `ccc_watch._redb`: a deliberately small binding over the redb embedded database.
//!
//! Surface: a `Database` (writable or read-only, always in redb's `SingleWriter`
//! concurrency mode so one process writes while others read), write and read
//! transactions, and tables keyed by `str` or by `u64` whose values are bytes.
//! Every redb call runs with the GIL released and inside `catch_unwind`, and every
//! redb error is translated here into a Python exception naming the database path.
//! A panic is a bug (ours, or redb's on a file damaged outside it) and surfaces as
//! `InternalError`; waits that can last (for the write slot, a repair on open, a
//! compaction) check for signals, so Ctrl-C and SIGTERM get through.

mod compress;
mod project;
#[cfg(unix)]
mod read;
mod rows;
mod scan;
mod tables;

use std::cell::RefCell;
use std::ops::Bound as Edge;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError};
use std::time::{Duration, Instant};

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyType};
use redb::{
    ConcurrencyMode, ReadableDatabase, ReadableTable, TableDefinition, TableError, TransactionError,
};

create_exception!(
    ccc_watch._redb,
    RedbError,
    PyException,
    "Base class of every error raised by ccc_watch._redb."
);
create_exception!(
    ccc_watch._redb,
    DatabaseLockedError,
    RedbError,
    "The database is held by another process."
);
create_exception!(
    ccc_watch._redb,
    RepairNeededError,
    RedbError,
    "The database was not closed cleanly; a writable open repairs it."
);
create_exception!(
    ccc_watch._redb,
    CorruptionError,
    RedbError,
    "redb found the database file damaged."
);
create_exception!(
    ccc_watch._redb,
    InternalError,
    RedbError,
    "A panic inside ccc_watch._redb or redb: a bug (redb also panics on some files damaged \
     outside it; check_integrity() on a writable open tells which)."
);
create_exception!(
    ccc_watch._redb,
    TableTypeError,
    RedbError,
    "A table was opened with another key or value type than it was created with."
);
create_exception!(
    ccc_watch._redb,
    TransactionClosedError,
    RedbError,
    "The transaction or database was already committed, aborted or closed."
);

/// Default page cache: redb's own default is 1 GiB, far more than an index of notes needs.
const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// How long a wait in Rust runs between two checks for a Python signal handler to run.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Translate any redb error into a Python exception that names the database file.
fn to_py(err: impl Into<redb::Error>, path: &str) -> PyErr {
    let err: redb::Error = err.into();
    match err {
        redb::Error::DatabaseAlreadyOpen => {
            DatabaseLockedError::new_err(format!("database is open in another process: {path}"))
        }
        redb::Error::LockProtocolMismatch => DatabaseLockedError::new_err(format!(
            "database is open in a process using an incompatible redb version: {path}"
        )),
        redb::Error::RepairAborted => RepairNeededError::new_err(format!(
            "database was not closed cleanly and needs a repair, which only a writable open does: {path}"
        )),
        redb::Error::Corrupted(msg) => {
            CorruptionError::new_err(format!("database is corrupted: {path}: {msg}"))
        }
        redb::Error::UpgradeRequired(v) => RedbError::new_err(format!(
            "database file format {v} needs an upgrade by a newer redb: {path}"
        )),
        redb::Error::Io(io) => match io.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, io.to_string(), path.to_string())),
            // redb's own I/O errors without an errno describe the file's content
            // (e.g. "Not a redb database: magic number mismatch").
            None => CorruptionError::new_err(format!("not a valid redb database: {path}: {io}")),
        },
        redb::Error::PreviousIo => RedbError::new_err(format!(
            "an earlier I/O error (disk full?) left the database unusable until it is reopened: {path}"
        )),
        redb::Error::ValueTooLarge(n) => {
            PyValueError::new_err(format!("value of {n} bytes is too large for redb: {path}"))
        }
        redb::Error::DatabaseClosed => {
            TransactionClosedError::new_err(format!("database is closed: {path}"))
        }
        e @ (redb::Error::TableTypeMismatch { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_)
        | redb::Error::TypeDefinitionChanged { .. }) => {
            TableTypeError::new_err(format!("{e}: {path}"))
        }
        e => RedbError::new_err(format!("{e}: {path}")),
    }
}

thread_local! {
    /// Where and why the last panic on this thread happened, set by the panic hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Record each panic's location and message for `guarded` instead of printing it: the
/// InternalError carries them, and one clear line beats a Rust report on a terminal.
/// The hook belongs to this extension's own copy of std, so no other module sees it.
/// With RUST_BACKTRACE set (and not 0) the usual report is printed too.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = payload_text(info.payload());
            let what = match info.location() {
                Some(at) => {
                    // redb's sources sit deep in the cargo registry: from the crate on is enough.
                    let file = at.file();
                    let file = file.rfind("/redb-").map_or(file, |i| &file[i + 1..]);
                    format!("panicked at {file}:{}: {message}", at.line())
                }
                None => format!("panicked: {message}"),
            };
            LAST_PANIC.with(|last| *last.borrow_mut() = Some(what));
            if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                report(info);
            }
        }));
    });
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

/// Run `f`, turning a panic into Err with where and why it happened.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        LAST_PANIC
            .with(|last| last.borrow_mut().take())
            .unwrap_or_else(|| format!("panicked: {}", payload_text(&*payload)))
    })
}

fn internal(what: &str, path: &str) -> PyErr {
    InternalError::new_err(format!(
        "internal error, a bug in ccc_watch._redb: {what}: {path} (redb also panics on some \
         files damaged outside it; check_integrity() on a writable open tells which)"
    ))
}

/// Run `f` without the GIL, turning a panic into an `InternalError`.
fn unlocked<T: Send>(
    py: Python<'_>,
    path: &str,
    f: impl FnOnce() -> PyResult<T> + Send,
) -> PyResult<T> {
    py.detach(|| guarded(f))
        .unwrap_or_else(|what| Err(internal(&what, path)))
}

/// Lock a mutex even if a panic (caught by `unlocked`) poisoned it: the state it
/// guards is an Option that is still valid, and abort/close must keep working.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read_only(path: &str) -> PyErr {
    RedbError::new_err(format!("database is opened read-only: {path}"))
}

fn closed(what: &str, path: &str) -> PyErr {
    TransactionClosedError::new_err(format!("{what} is already closed: {path}"))
}

enum Handle {
    Writable(redb::Database),
    ReadOnly(redb::ReadOnlyDatabase),
}

impl Handle {
    fn writable(&self, path: &str) -> PyResult<&redb::Database> {
        match self {
            Handle::Writable(db) => Ok(db),
            Handle::ReadOnly(_) => Err(read_only(path)),
        }
    }
}

/// A repair callback for a writable open: it runs Python's signal handlers every
/// SIGNAL_POLL, and aborts the repair (keeping the handler's exception) when one raises.
fn interruptible_repair(
    pending: Arc<Mutex<Option<PyErr>>>,
) -> impl Fn(&mut redb::RepairSession) + 'static {
    let last = Mutex::new(None::<Instant>);
    move |session| {
        let mut last = lock(&last);
        if last.is_some_and(|t| t.elapsed() < SIGNAL_POLL) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(e) = Python::attach(|py| py.check_signals()) {
            *lock(&pending) = Some(e);
            session.abort();
        }
    }
}

/// A redb database file opened in `SingleWriter` mode.
#[pyclass(frozen, module = "ccc_watch._redb")]
struct Database {
    path: Arc<str>,
    readonly: bool,
    // An Arc, so begin_write() can wait for redb's write slot without holding this
    // lock (close/check/compact from another thread must not hang behind it).
    handle: Mutex<Option<Arc<Handle>>>,
}

#[pymethods]
impl Database {
    #[new]
    #[pyo3(signature = (path, *, readonly = false, create = true, cache_size = DEFAULT_CACHE_BYTES))]
    fn new(
        py: Python<'_>,
        path: std::path::PathBuf,
        readonly: bool,
        create: bool,
        cache_size: usize,
    ) -> PyResult<Self> {
        let shown = path.display().to_string();
        let interrupted = Arc::new(Mutex::new(None));
        let handle = unlocked(py, &shown, || {
            let mut builder = redb::Builder::new();
            builder
                .set_concurrency_mode(ConcurrencyMode::SingleWriter)
                .set_cache_size(cache_size)
                .set_repair_callback(interruptible_repair(interrupted.clone()));
            let opened = if readonly {
                builder.open_read_only(&path).map(Handle::ReadOnly)
            } else if create {
                builder.create(&path).map(Handle::Writable)
            } else {
                builder.open(&path).map(Handle::Writable)
            };
            // A repair aborted by a signal handler's exception raises that exception.
            opened.map_err(|e| {
                lock(&interrupted)
                    .take()
                    .unwrap_or_else(|| to_py(e, &shown))
            })
        })?;
        Ok(Self {
            path: Arc::from(shown.as_str()),
            readonly,
            handle: Mutex::new(Some(Arc::new(handle))),
        })
    }

    /// The path the database was opened with.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// True when opened read-only.
    #[getter]
    fn readonly(&self) -> bool {
        self.readonly
    }

    /// True once `close()` has run.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| lock(&self.handle).is_none())
    }

    /// Start a write transaction. While another one in this process is open it waits,
    /// running Python's signal handlers every SIGNAL_POLL so that Ctrl-C gets through.
    fn begin_write(&self, py: Python<'_>) -> PyResult<WriteTransaction> {
        let path = self.path.clone();
        let handle = self.handle(py)?;
        let free = unlocked(py, &path, || {
            match handle.writable(&path)?.try_begin_write() {
                Ok(txn) => Ok(Some(txn)),
                Err(TransactionError::WouldBlock) => Ok(None),
                Err(e) => Err(to_py(e, &path)),
            }
        })?;
        let txn = match free {
            Some(txn) => txn,
            None => wait_for_write_slot(py, handle, &path)?,
        };
        Ok(WriteTransaction {
            path,
            txn: Mutex::new(Some(txn)),
        })
    }

    /// Start a read transaction: one consistent snapshot of the last commit.
    fn begin_read(&self, py: Python<'_>) -> PyResult<ReadTransaction> {
        let path = self.path.clone();
        let handle = self.handle(py)?;
        let txn = unlocked(py, &path, || {
            match handle.as_ref() {
                Handle::Writable(db) => db.begin_read(),
                Handle::ReadOnly(db) => db.begin_read(),
            }
            .map_err(|e| to_py(e, &path))
        })?;
        Ok(ReadTransaction {
            path,
            txn: Mutex::new(Some(txn)),
        })
    }

    /// Verify every page checksum (and repair the allocator state). Needs a writable
    /// database with no transaction open. Returns True when the file was intact.
    fn check_integrity(&self, py: Python<'_>) -> PyResult<bool> {
        // It waits for nobody (an open transaction makes it fail instead), and its work
        // is one pass over the file, which redb gives no way to interrupt.
        py.check_signals()?;
        self.with_writable_mut(py, |db, path| {
            db.check_integrity().map_err(|e| to_py(e, path))
        })
    }

    /// Compact the file. Needs a writable database with no transaction open.
    /// Returns True when anything was compacted.
    fn compact(&self, py: Python<'_>) -> PyResult<bool> {
        let mut any = false;
        // One step at a time: the file is consistent after each, so a signal handler's
        // exception can stop the compaction between two steps.
        loop {
            py.check_signals()?;
            let moved =
                self.with_writable_mut(py, |db, path| db.compact().map_err(|e| to_py(e, path)))?;
            if !moved {
                return Ok(any);
            }
            any = true;
        }
    }

    /// Close the file and release its locks. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let path = self.path.clone();
        let Some(handle) = py.detach(|| lock(&self.handle).take()) else {
            return Ok(());
        };
        unlocked(py, &path, || {
            // Another thread still inside begin_write/begin_read holds a clone: redb
            // then closes the file when that last clone is dropped.
            let result = match Arc::try_unwrap(handle) {
                Ok(Handle::Writable(db)) => db.close(),
                Ok(Handle::ReadOnly(db)) => db.close(),
                Err(_) => Ok(()),
            };
            match result {
                // A live write transaction defers the close until it ends (redb's rule).
                Ok(()) | Err(redb::DatabaseError::TransactionInProgress) => Ok(()),
                Err(e) => Err(to_py(e, &path)),
            }
        })
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let mode = if self.readonly {
            "read-only"
        } else {
            "writable"
        };
        format!("<Database {} ({mode})>", self.path)
    }
}

/// Wait for redb's write slot, taken by another write transaction of this process.
///
/// redb's own begin_write() queues fairly but cannot be interrupted, so a thread waits
/// in it while the caller waits for that thread in slices of SIGNAL_POLL, running the
/// signal handlers between them. When a handler raises, the caller returns its
/// exception at once; the thread still gets the slot in turn and then drops (aborts)
/// the transaction nobody wants any more.
fn wait_for_write_slot(
    py: Python<'_>,
    handle: Arc<Handle>,
    path: &Arc<str>,
) -> PyResult<redb::WriteTransaction> {
    let (answer, answered) = mpsc::sync_channel(1);
    let shown = path.clone();
    std::thread::Builder::new()
        .name("ccc_watch._redb begin_write".into())
        .spawn(move || {
            let got = guarded(|| {
                handle
                    .writable(&shown)?
                    .begin_write()
                    .map_err(|e| to_py(e, &shown))
            });
            // Err: the caller left (a signal); dropping the transaction aborts it.
            let _ = answer.send(got);
        })
        .map_err(|e| {
            PyOSError::new_err(format!(
                "cannot start a thread to wait for the write slot: {e}: {path}"
            ))
        })?;
    let mut answered = answered;
    loop {
        // The receiver moves into the GIL-free closure and back (it is Send, not Sync).
        let (back, got) = py.detach(move || {
            let got = answered.recv_timeout(SIGNAL_POLL);
            (answered, got)
        });
        answered = back;
        match got {
            Ok(Ok(result)) => return result,
            Ok(Err(what)) => return Err(internal(&what, path)),
            Err(RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(internal(
                    "the thread waiting for the write slot ended without an answer",
                    path,
                ))
            }
        }
    }
}

impl Database {
    fn with_writable_mut<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut redb::Database, &str) -> PyResult<T> + Send,
    ) -> PyResult<T> {
        let path = self.path.clone();
        // The lock is taken and released without the GIL: a thread holding the GIL
        // while it waits for this lock must never be what this thread waits for.
        unlocked(py, &path, || {
            let mut guard = lock(&self.handle);
            let handle = guard.as_mut().ok_or_else(|| closed("database", &path))?;
            let handle = Arc::get_mut(handle).ok_or_else(|| {
                RedbError::new_err(format!(
                    "another thread is starting a transaction; try again: {path}"
                ))
            })?;
            match handle {
                Handle::Writable(db) => f(db, &path),
                Handle::ReadOnly(_) => Err(read_only(&path)),
            }
        })
    }

    fn handle(&self, py: Python<'_>) -> PyResult<Arc<Handle>> {
        py.detach(|| lock(&self.handle).clone())
            .ok_or_else(|| closed("database", &self.path))
    }
}

/// A write transaction; as a context manager it commits on success and aborts on an exception.
#[pyclass(frozen, module = "ccc_watch._redb")]
struct WriteTransaction {
    path: Arc<str>,
    txn: Mutex<Option<redb::WriteTransaction>>,
}

#[pymethods]
impl WriteTransaction {
    /// The table `name`, keyed by str (created on first use).
    fn str_table(slf: Py<Self>, name: String) -> Table {
        Table {
            name,
            keys: KeyKind::Str,
            txn: Txn::Write(slf),
        }
    }

    /// The table `name`, keyed by unsigned 64-bit integers (created on first use).
    fn u64_table(slf: Py<Self>, name: String) -> Table {
        Table {
            name,
            keys: KeyKind::U64,
            txn: Txn::Write(slf),
        }
    }

    /// Make every change durable. The transaction cannot be used afterwards.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        let path = self.path.clone();
        unlocked(py, &path, || match self.take() {
            Some(txn) => txn.commit().map_err(|e| to_py(e, &path)),
            None => Err(closed("write transaction", &path)),
        })
    }

    /// Discard every change. Idempotent.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        let path = self.path.clone();
        unlocked(py, &path, || match self.take() {
            Some(txn) => txn.abort().map_err(|e| to_py(e, &path)),
            None => Ok(()),
        })
    }

    /// True until commit() or abort().
    #[getter]
    fn active(&self) -> bool {
        lock(&self.txn).is_some()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyType>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if exc_type.is_some() {
            // The exception that left the block is the one to see; an abort that
            // fails too (a damaged file) must not replace it.
            let _ = self.abort(py);
        } else if self.active() {
            self.commit(py)?;
        }
        Ok(false)
    }
}

impl WriteTransaction {
    fn take(&self) -> Option<redb::WriteTransaction> {
        lock(&self.txn).take()
    }
}

/// A read transaction: a snapshot that later commits do not change.
#[pyclass(frozen, module = "ccc_watch._redb")]
struct ReadTransaction {
    path: Arc<str>,
    txn: Mutex<Option<redb::ReadTransaction>>,
}

#[pymethods]
impl ReadTransaction {
    /// The table `name`, keyed by str. A table that does not exist reads as empty.
    fn str_table(slf: Py<Self>, name: String) -> Table {
        Table {
            name,
            keys: KeyKind::Str,
            txn: Txn::Read(slf),
        }
    }

    /// The table `name`, keyed by u64. A table that does not exist reads as empty.
    fn u64_table(slf: Py<Self>, name: String) -> Table {
        Table {
            name,
            keys: KeyKind::U64,
            txn: Txn::Read(slf),
        }
    }

    /// Release the snapshot. Idempotent.
    fn close(&self) {
        let taken = lock(&self.txn).take();
        drop(taken);
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }
}

/// Which of the two redb key types a table has; every call dispatches on it once
/// (`by_key_type!`) and is typed from then on.
#[derive(Clone, Copy)]
enum KeyKind {
    Str,
    U64,
}

/// Run `$body` with `$K` bound to the table's redb key type.
macro_rules! by_key_type {
    ($kind:expr, $K:ident => $body:expr) => {
        match $kind {
            KeyKind::Str => {
                type $K = &'static str;
                $body
            }
            KeyKind::U64 => {
                type $K = u64;
                $body
            }
        }
    };
}

enum Txn {
    Write(Py<WriteTransaction>),
    Read(Py<ReadTransaction>),
}

/// A redb key type of a table, with the owned form a key has between Python and redb.
trait KeyType: redb::Key + 'static {
    type Owned: Send;
    const NAME: &'static str;
    fn borrow(k: &Self::Owned) -> Self::SelfType<'_>;
    fn own(v: Self::SelfType<'_>) -> Self::Owned;
    fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<Self::Owned>;
    fn to_py(k: Self::Owned, py: Python<'_>) -> PyResult<Py<PyAny>>;
    /// The bounds [start, end) of the keys that start with `prefix`.
    fn prefix_bounds(prefix: String) -> PyResult<(Self::Owned, Option<Self::Owned>)>;
}

impl KeyType for &'static str {
    type Owned = String;
    const NAME: &'static str = "str";
    fn borrow(k: &String) -> &str {
        k
    }
    fn own(v: &str) -> String {
        v.to_owned()
    }
    fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<String> {
        obj.extract().map_err(|_| {
            if obj.is_instance_of::<PyString>() {
                PyTypeError::new_err("str table key is not valid Unicode (a lone surrogate?)")
            } else {
                PyTypeError::new_err(format!("str table key must be str, not {}", type_name(obj)))
            }
        })
    }
    fn to_py(k: String, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(k.into_pyobject(py)?.into_any().unbind())
    }
    fn prefix_bounds(prefix: String) -> PyResult<(String, Option<String>)> {
        let end = prefix_end(&prefix);
        Ok((prefix, end))
    }
}

impl KeyType for u64 {
    type Owned = u64;
    const NAME: &'static str = "u64";
    fn borrow(k: &u64) -> u64 {
        *k
    }
    fn own(v: u64) -> u64 {
        v
    }
    fn from_py(obj: &Bound<'_, PyAny>) -> PyResult<u64> {
        obj.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "u64 table key must be an int from 0 to 2**64-1, not {}",
                type_name(obj)
            ))
        })
    }
    fn to_py(k: u64, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(k.into_pyobject(py)?.into_any().unbind())
    }
    fn prefix_bounds(_: String) -> PyResult<(u64, Option<u64>)> {
        Err(PyTypeError::new_err("prefix scans need a str table"))
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The smallest string greater than every string starting with `prefix`, if any: the
/// exclusive end of a prefix scan. Exported, so that the SQLite backend's prefix scans
/// use this one definition too.
#[pyfunction]
#[pyo3(name = "prefix_end")]
fn py_prefix_end(prefix: &str) -> Option<String> {
    prefix_end(prefix)
}

/// `data` as one zstd frame (with its content size and checksum) at `level`, without
/// the GIL. ValueError for a level zstd does not have.
#[pyfunction]
#[pyo3(name = "compress", signature = (data, level = compress::DEFAULT_LEVEL))]
fn py_compress<'py>(py: Python<'py>, data: &[u8], level: i32) -> PyResult<Bound<'py, PyBytes>> {
    let out = py
        .detach(|| guarded(|| compress::compress(data, level)))
        .map_err(|what| internal(&what, "compress"))?
        .map_err(PyValueError::new_err)?;
    Ok(PyBytes::new(py, &out))
}

/// The content of `data`, one zstd frame as compress() makes, without the GIL.
/// ValueError (never a panic) when it is not one whole, intact frame.
#[pyfunction]
#[pyo3(name = "decompress")]
fn py_decompress<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
    let out = py
        .detach(|| guarded(|| compress::decompress(data)))
        .map_err(|what| internal(&what, "decompress"))?
        .map_err(PyValueError::new_err)?;
    Ok(PyBytes::new(py, &out))
}

/// What every zstd frame anywhere in `data` decodes to, as far as it decodes (damaged
/// or cut-short frames give their first part), without the GIL: for a search of a
/// database file for text, which compressed values would otherwise hide from it.
#[pyfunction]
#[pyo3(name = "frames_in")]
fn py_frames_in<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Vec<Bound<'py, PyBytes>>> {
    let found = py
        .detach(|| guarded(|| compress::frames_in(data)))
        .map_err(|what| internal(&what, "frames_in"))?;
    Ok(found.iter().map(|f| PyBytes::new(py, f)).collect())
}

/// The smallest string greater than every string starting with `prefix`, if any.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn definition<K: KeyType>(name: &str) -> TableDefinition<'_, K, &'static [u8]> {
    TableDefinition::new(name)
}

/// A read of one table, decided while holding the GIL and run without it. Each kind of
/// read has its own output type, so no answer has to be matched back at run time.
trait ReadJob<K: KeyType>: Send {
    type Out: Send;
    fn run<T: ReadableTable<K, &'static [u8]>>(self, t: &T) -> Result<Self::Out, redb::Error>;
    /// The answer for a table never created, which reads as empty.
    fn empty(self) -> Self::Out;
}

/// A change to one table; only a write transaction can run it.
trait WriteJob<K: KeyType>: Send {
    type Out: Send;
    fn run(self, t: &mut redb::Table<'_, K, &'static [u8]>) -> Result<Self::Out, redb::Error>;
}

struct Get<K: KeyType>(K::Owned);

impl<K: KeyType> ReadJob<K> for Get<K> {
    type Out = Option<Vec<u8>>;
    fn run<T: ReadableTable<K, &'static [u8]>>(self, t: &T) -> Result<Self::Out, redb::Error> {
        Ok(t.get(K::borrow(&self.0))?.map(|v| v.value().to_vec()))
    }
    fn empty(self) -> Self::Out {
        None
    }
}

struct Count;

impl<K: KeyType> ReadJob<K> for Count {
    type Out = u64;
    fn run<T: ReadableTable<K, &'static [u8]>>(self, t: &T) -> Result<u64, redb::Error> {
        Ok(t.len()?)
    }
    fn empty(self) -> u64 {
        0
    }
}

/// Bounds and options of one range scan.
struct Scan<K: KeyType> {
    start: Option<K::Owned>,
    end: Option<K::Owned>,
    limit: Option<usize>,
    reverse: bool,
    /// Return only these top-level members of each value (see project.rs).
    fields: Option<Vec<String>>,
}

impl<K: KeyType> ReadJob<K> for Scan<K> {
    type Out = Vec<(K::Owned, Vec<u8>)>;
    fn run<T: ReadableTable<K, &'static [u8]>>(self, t: &T) -> Result<Self::Out, redb::Error> {
        let lo = self
            .start
            .as_ref()
            .map_or(Edge::Unbounded, |k| Edge::Included(K::borrow(k)));
        let hi = self
            .end
            .as_ref()
            .map_or(Edge::Unbounded, |k| Edge::Excluded(K::borrow(k)));
        let iter = t.range((lo, hi))?;
        let iter: Box<dyn Iterator<Item = _>> = if self.reverse {
            Box::new(iter.rev())
        } else {
            Box::new(iter)
        };
        let mut rows = Vec::new();
        for item in iter.take(self.limit.unwrap_or(usize::MAX)) {
            let (k, v) = item?;
            let value = match &self.fields {
                Some(fields) => project::project_stored(v.value(), fields),
                None => None,
            };
            rows.push((
                K::own(k.value()),
                value.unwrap_or_else(|| v.value().to_vec()),
            ));
        }
        Ok(rows)
    }
    fn empty(self) -> Self::Out {
        Vec::new()
    }
}

struct Put<K: KeyType>(Vec<(K::Owned, Vec<u8>)>);

impl<K: KeyType> WriteJob<K> for Put<K> {
    type Out = ();
    fn run(self, t: &mut redb::Table<'_, K, &'static [u8]>) -> Result<(), redb::Error> {
        for (k, v) in &self.0 {
            t.insert(K::borrow(k), v.as_slice())?;
        }
        Ok(())
    }
}

struct Remove<K: KeyType>(K::Owned);

impl<K: KeyType> WriteJob<K> for Remove<K> {
    type Out = bool;
    fn run(self, t: &mut redb::Table<'_, K, &'static [u8]>) -> Result<bool, redb::Error> {
        Ok(t.remove(K::borrow(&self.0))?.is_some())
    }
}

/// A table inside one transaction. Each call opens the table in that transaction,
/// which redb makes cheap, so no Rust borrow has to outlive a Python call.
#[pyclass(frozen, module = "ccc_watch._redb")]
struct Table {
    name: String,
    keys: KeyKind,
    txn: Txn,
}

#[pymethods]
impl Table {
    /// The table's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The value stored under `key`, or None.
    fn get(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyBytes>>> {
        let value = by_key_type!(self.keys, K => self.read(py, Get::<K>(K::from_py(key)?))?);
        Ok(value.map(|v| PyBytes::new(py, &v).unbind()))
    }

    /// Store `value` under `key`, replacing what was there.
    fn put(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyBytes>,
    ) -> PyResult<()> {
        by_key_type!(self.keys, K => {
            let pair = (K::from_py(key)?, value.as_bytes().to_vec());
            self.write(py, Put::<K>(vec![pair]))
        })
    }

    /// Store many (key, value) pairs; returns how many were written.
    fn put_many(&self, py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<u64> {
        by_key_type!(self.keys, K => {
            // Every pair is checked before anything is written: all or nothing.
            let mut pairs = Vec::new();
            for item in items.try_iter()? {
                let item = item?;
                let (k, v): (Bound<'_, PyAny>, Bound<'_, PyBytes>) =
                    item.extract().map_err(|_| {
                        PyTypeError::new_err("put_many takes an iterable of (key, bytes) pairs")
                    })?;
                pairs.push((K::from_py(&k)?, v.as_bytes().to_vec()));
            }
            let n = pairs.len() as u64;
            self.write(py, Put::<K>(pairs)).map(|()| n)
        })
    }

    /// Remove `key`; returns True when it was present.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        by_key_type!(self.keys, K => self.write(py, Remove::<K>(K::from_py(key)?)))
    }

    /// (key, value) pairs in key order from `start` (inclusive) to `end` (exclusive),
    /// or those whose str key starts with `prefix`; at most `limit`, last first when
    /// `reverse`. With `fields`, a value that is a JSON object comes back as the JSON
    /// object of only its members named there (parsed here, its other members never
    /// copied); any other value comes back whole.
    #[pyo3(signature = (start = None, end = None, *, prefix = None, limit = None, reverse = false, fields = None))]
    #[allow(clippy::too_many_arguments)]
    fn range(
        &self,
        py: Python<'_>,
        start: Option<&Bound<'_, PyAny>>,
        end: Option<&Bound<'_, PyAny>>,
        prefix: Option<String>,
        limit: Option<usize>,
        reverse: bool,
        fields: Option<Vec<String>>,
    ) -> PyResult<Vec<(Py<PyAny>, Py<PyBytes>)>> {
        by_key_type!(self.keys, K => {
            let mut scan = Scan::<K> {
                start: start.map(K::from_py).transpose()?,
                end: end.map(K::from_py).transpose()?,
                limit,
                reverse,
                fields,
            };
            if let Some(p) = prefix {
                let (lo, hi) = K::prefix_bounds(p)?;
                if scan.start.is_some() || scan.end.is_some() {
                    return Err(PyValueError::new_err(
                        "give either prefix or start/end, not both",
                    ));
                }
                scan.start = Some(lo);
                scan.end = hi;
            }
            self.read(py, scan)?
                .into_iter()
                .map(|(k, v)| Ok((K::to_py(k, py)?, PyBytes::new(py, &v).unbind())))
                .collect()
        })
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        let n = by_key_type!(self.keys, K => self.read::<K, _>(py, Count)?);
        Ok(n as usize)
    }

    fn __repr__(&self) -> String {
        let kind = by_key_type!(self.keys, K => <K as KeyType>::NAME);
        format!("<Table {} ({kind} keys)>", self.name)
    }
}

impl Table {
    /// Run a read in this table's transaction, without the GIL.
    fn read<K: KeyType, J: ReadJob<K>>(&self, py: Python<'_>, job: J) -> PyResult<J::Out> {
        match &self.txn {
            Txn::Write(_) => self.in_write(py, |t| job.run(t)),
            Txn::Read(r) => {
                let r = r.get();
                let path = r.path.clone();
                unlocked(py, &path, || {
                    let guard = lock(&r.txn);
                    let txn = guard
                        .as_ref()
                        .ok_or_else(|| closed("read transaction", &path))?;
                    match txn.open_table(definition::<K>(&self.name)) {
                        Ok(t) => job.run(&t),
                        // A table never created reads as empty.
                        Err(TableError::TableDoesNotExist(_)) => Ok(job.empty()),
                        Err(e) => Err(e.into()),
                    }
                    .map_err(|e| to_py(e, &path))
                })
            }
        }
    }

    /// Run a change in this table's transaction, without the GIL; refused in a read one.
    fn write<K: KeyType, J: WriteJob<K>>(&self, py: Python<'_>, job: J) -> PyResult<J::Out> {
        match &self.txn {
            Txn::Read(r) => Err(RedbError::new_err(format!(
                "table {} is read-only in a read transaction: {}",
                self.name,
                r.get().path
            ))),
            Txn::Write(_) => self.in_write(py, |t| job.run(t)),
        }
    }

    /// Open this table in its write transaction and run f on it, without the GIL.
    fn in_write<K: KeyType, T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut redb::Table<'_, K, &'static [u8]>) -> Result<T, redb::Error> + Send,
    ) -> PyResult<T> {
        let Txn::Write(w) = &self.txn else {
            return Err(RedbError::new_err(format!(
                "table {} is not in a write transaction",
                self.name
            )));
        };
        let w = w.get();
        let path = w.path.clone();
        unlocked(py, &path, || {
            let guard = lock(&w.txn);
            let txn = guard
                .as_ref()
                .ok_or_else(|| closed("write transaction", &path))?;
            let mut t = txn
                .open_table(definition::<K>(&self.name))
                .map_err(|e| to_py(e, &path))?;
            f(&mut t).map_err(|e| to_py(e, &path))
        })
    }
}

#[pymodule]
fn _redb(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    install_panic_hook();
    m.add_class::<Database>()?;
    m.add_class::<WriteTransaction>()?;
    m.add_class::<ReadTransaction>()?;
    m.add_class::<Table>()?;
    m.add_function(wrap_pyfunction!(py_prefix_end, m)?)?;
    m.add_function(wrap_pyfunction!(py_compress, m)?)?;
    m.add_function(wrap_pyfunction!(py_decompress, m)?)?;
    m.add_function(wrap_pyfunction!(py_frames_in, m)?)?;
    m.add("ZSTD_MAGIC", PyBytes::new(py, &compress::MAGIC))?;
    m.add("ZSTD_DEFAULT_LEVEL", compress::DEFAULT_LEVEL)?;
    m.add_function(wrap_pyfunction!(scan::py_scan_body, m)?)?;
    m.add_function(wrap_pyfunction!(rows::py_columns, m)?)?;
    m.add_function(wrap_pyfunction!(rows::py_children, m)?)?;
    m.add_function(wrap_pyfunction!(rows::py_tag_rows, m)?)?;
    m.add_function(wrap_pyfunction!(rows::py_anchor_rows, m)?)?;
    m.add_function(wrap_pyfunction!(rows::py_property_values, m)?)?;
    m.add_function(wrap_pyfunction!(rows::py_days, m)?)?;
    #[cfg(unix)]
    {
        m.add_function(wrap_pyfunction!(read::py_read_in, m)?)?;
        m.add("READ_OK", read::OK)?;
        m.add("READ_SYMLINK", read::SYMLINK)?;
        m.add("READ_NOT_REGULAR", read::NOT_REGULAR)?;
        m.add("READ_FD_NOT_REGULAR", read::FD_NOT_REGULAR)?;
        m.add("READ_CHANGED", read::CHANGED)?;
        m.add("READ_PYTHON", read::PYTHON)?;
    }
    m.add("RedbError", py.get_type::<RedbError>())?;
    m.add("DatabaseLockedError", py.get_type::<DatabaseLockedError>())?;
    m.add("RepairNeededError", py.get_type::<RepairNeededError>())?;
    m.add("CorruptionError", py.get_type::<CorruptionError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add("TableTypeError", py.get_type::<TableTypeError>())?;
    m.add(
        "TransactionClosedError",
        py.get_type::<TransactionClosedError>(),
    )?;
    m.add("DEFAULT_CACHE_BYTES", DEFAULT_CACHE_BYTES)?;
    m.add("REDB_VERSION", "4.6.0")?;
    m.add("UNICODE_VERSION", tables::UNICODE_VERSION)?;
    Ok(())
}
