//! `ccc_watch._redb`: a deliberately small binding over the redb embedded database.
//!
//! Surface: a `Database` (writable or read-only, always in redb's `SingleWriter`
//! concurrency mode so one process writes while others read), write and read
//! transactions, and tables keyed by `str` or by `u64` whose values are bytes.
//! Every redb call runs with the GIL released and inside `catch_unwind`, and every
//! redb error is translated here into a Python exception naming the database path.

use std::ops::Bound as Edge;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyType};
use redb::{ConcurrencyMode, ReadableDatabase, ReadableTable, TableDefinition, TableError};

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
    "The database file is damaged."
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

/// Run `f` without the GIL, turning a panic inside redb into a `CorruptionError`
/// (redb documents that a damaged file may panic rather than return an error).
fn unlocked<T: Send>(
    py: Python<'_>,
    path: &str,
    f: impl FnOnce() -> PyResult<T> + Send,
) -> PyResult<T> {
    let outcome = py.detach(|| catch_unwind(AssertUnwindSafe(f)).map_err(|_| ()));
    match outcome {
        Ok(result) => result,
        Err(()) => Err(CorruptionError::new_err(format!(
            "redb failed unexpectedly (damaged file?): {path}"
        ))),
    }
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
        let handle = unlocked(py, &shown, || {
            let mut builder = redb::Builder::new();
            builder
                .set_concurrency_mode(ConcurrencyMode::SingleWriter)
                .set_cache_size(cache_size);
            let opened = if readonly {
                builder.open_read_only(&path).map(Handle::ReadOnly)
            } else if create {
                builder.create(&path).map(Handle::Writable)
            } else {
                builder.open(&path).map(Handle::Writable)
            };
            opened.map_err(|e| to_py(e, &shown))
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

    /// Start a write transaction (waits while another one in this process is open).
    fn begin_write(&self, py: Python<'_>) -> PyResult<WriteTransaction> {
        let path = self.path.clone();
        let handle = self.handle(py)?;
        let txn = unlocked(py, &path, || match handle.as_ref() {
            Handle::Writable(db) => db.begin_write().map_err(|e| to_py(e, &path)),
            Handle::ReadOnly(_) => Err(read_only(&path)),
        })?;
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
        self.with_writable_mut(py, |db, path| {
            db.check_integrity().map_err(|e| to_py(e, path))
        })
    }

    /// Compact the file. Needs a writable database with no transaction open.
    /// Returns True when anything was compacted.
    fn compact(&self, py: Python<'_>) -> PyResult<bool> {
        self.with_writable_mut(py, |db, path| {
            let mut any = false;
            while db.compact().map_err(|e| to_py(e, path))? {
                any = true;
            }
            Ok(any)
        })
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
            kind: KeyKind::Str,
            txn: Txn::Write(slf),
        }
    }

    /// The table `name`, keyed by unsigned 64-bit integers (created on first use).
    fn u64_table(slf: Py<Self>, name: String) -> Table {
        Table {
            name,
            kind: KeyKind::U64,
            txn: Txn::Write(slf),
        }
    }

    /// Make every change durable. The transaction cannot be used afterwards.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        let path = self.path.clone();
        unlocked(py, &path, || match self.take()? {
            Some(txn) => txn.commit().map_err(|e| to_py(e, &path)),
            None => Err(closed("write transaction", &path)),
        })
    }

    /// Discard every change. Idempotent.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        let path = self.path.clone();
        unlocked(py, &path, || match self.take()? {
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
    fn take(&self) -> PyResult<Option<redb::WriteTransaction>> {
        Ok(lock(&self.txn).take())
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
            kind: KeyKind::Str,
            txn: Txn::Read(slf),
        }
    }

    /// The table `name`, keyed by u64. A table that does not exist reads as empty.
    fn u64_table(slf: Py<Self>, name: String) -> Table {
        Table {
            name,
            kind: KeyKind::U64,
            txn: Txn::Read(slf),
        }
    }

    /// Release the snapshot. Idempotent.
    fn close(&self) -> PyResult<()> {
        let taken = lock(&self.txn).take();
        drop(taken);
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Str,
    U64,
}

enum Txn {
    Write(Py<WriteTransaction>),
    Read(Py<ReadTransaction>),
}

/// A key as Python passed it, checked against the table's key kind.
enum Key {
    Str(String),
    U64(u64),
}

impl Key {
    fn extract(obj: &Bound<'_, PyAny>, kind: KeyKind) -> PyResult<Self> {
        match kind {
            KeyKind::Str => Ok(Key::Str(obj.extract().map_err(|_| {
                if obj.is_instance_of::<PyString>() {
                    PyTypeError::new_err("str table key is not valid Unicode (a lone surrogate?)")
                } else {
                    PyTypeError::new_err(format!(
                        "str table key must be str, not {}",
                        type_name(obj)
                    ))
                }
            })?)),
            KeyKind::U64 => Ok(Key::U64(obj.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "u64 table key must be an int from 0 to 2**64-1, not {}",
                    type_name(obj)
                ))
            })?)),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Key::Str(s) => s,
            Key::U64(_) => unreachable!("checked by Key::extract"),
        }
    }

    fn as_u64(&self) -> u64 {
        match self {
            Key::U64(n) => *n,
            Key::Str(_) => unreachable!("checked by Key::extract"),
        }
    }

    fn into_py(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(match self {
            Key::Str(s) => s.into_pyobject(py)?.into_any().unbind(),
            Key::U64(n) => n.into_pyobject(py)?.into_any().unbind(),
        })
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
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

/// Bounds and options of one range scan.
struct Scan {
    start: Option<Key>,
    end: Option<Key>,
    limit: Option<usize>,
    reverse: bool,
}

type Rows = Vec<(Key, Vec<u8>)>;

/// What a table operation does, decided while holding the GIL and run without it.
enum Op {
    Get(Key),
    Put(Vec<(Key, Vec<u8>)>),
    Delete(Key),
    Len,
    Scan(Scan),
}

enum Out {
    Value(Option<Vec<u8>>),
    Count(u64),
    Deleted(bool),
    Rows(Rows),
}

/// The two redb key types a table can have, converted to and from `Key`.
trait KeyType: redb::Key + 'static {
    fn of(k: &Key) -> Self::SelfType<'_>;
    fn back(v: Self::SelfType<'_>) -> Key;
}

impl KeyType for &'static str {
    fn of(k: &Key) -> &str {
        k.as_str()
    }
    fn back(v: &str) -> Key {
        Key::Str(v.to_owned())
    }
}

impl KeyType for u64 {
    fn of(k: &Key) -> u64 {
        k.as_u64()
    }
    fn back(v: u64) -> Key {
        Key::U64(v)
    }
}

fn read_op<K: KeyType, T: ReadableTable<K, &'static [u8]>>(
    t: &T,
    op: Op,
) -> Result<Out, redb::Error> {
    Ok(match op {
        Op::Get(k) => Out::Value(t.get(K::of(&k))?.map(|v| v.value().to_vec())),
        Op::Len => Out::Count(t.len()?),
        Op::Scan(s) => {
            let lo = s
                .start
                .as_ref()
                .map_or(Edge::Unbounded, |k| Edge::Included(K::of(k)));
            let hi = s
                .end
                .as_ref()
                .map_or(Edge::Unbounded, |k| Edge::Excluded(K::of(k)));
            let iter = t.range((lo, hi))?;
            let iter: Box<dyn Iterator<Item = _>> = if s.reverse {
                Box::new(iter.rev())
            } else {
                Box::new(iter)
            };
            let mut rows = Vec::new();
            for item in iter.take(s.limit.unwrap_or(usize::MAX)) {
                let (k, v) = item?;
                rows.push((K::back(k.value()), v.value().to_vec()));
            }
            Out::Rows(rows)
        }
        Op::Put(_) | Op::Delete(_) => unreachable!("writes are refused before this"),
    })
}

fn write_op<K: KeyType>(
    txn: &redb::WriteTransaction,
    name: &str,
    op: Op,
) -> Result<Out, redb::Error> {
    let mut t = txn.open_table(TableDefinition::<K, &'static [u8]>::new(name))?;
    Ok(match op {
        Op::Put(pairs) => {
            for (k, v) in &pairs {
                t.insert(K::of(k), v.as_slice())?;
            }
            Out::Count(pairs.len() as u64)
        }
        Op::Delete(k) => Out::Deleted(t.remove(K::of(&k))?.is_some()),
        op => return read_op::<K, _>(&t, op),
    })
}

fn snapshot_op<K: KeyType>(
    txn: &redb::ReadTransaction,
    name: &str,
    op: Op,
) -> Result<Out, redb::Error> {
    match txn.open_table(TableDefinition::<K, &'static [u8]>::new(name)) {
        Ok(t) => read_op::<K, _>(&t, op),
        // A table never created reads as empty.
        Err(TableError::TableDoesNotExist(_)) => Ok(match op {
            Op::Get(_) => Out::Value(None),
            Op::Len => Out::Count(0),
            Op::Scan(_) => Out::Rows(Vec::new()),
            Op::Put(_) | Op::Delete(_) => unreachable!("writes are refused before this"),
        }),
        Err(e) => Err(e.into()),
    }
}

/// A table inside one transaction. Each call opens the table in that transaction,
/// which redb makes cheap, so no Rust borrow has to outlive a Python call.
#[pyclass(frozen, module = "ccc_watch._redb")]
struct Table {
    name: String,
    kind: KeyKind,
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
        match self.run(py, Op::Get(Key::extract(key, self.kind)?))? {
            Out::Value(v) => Ok(v.map(|v| PyBytes::new(py, &v).unbind())),
            _ => unreachable!(),
        }
    }

    /// Store `value` under `key`, replacing what was there.
    fn put(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyBytes>,
    ) -> PyResult<()> {
        let k = Key::extract(key, self.kind)?;
        self.run(py, Op::Put(vec![(k, value.as_bytes().to_vec())]))
            .map(|_| ())
    }

    /// Store many (key, value) pairs; returns how many were written.
    fn put_many(&self, py: Python<'_>, items: &Bound<'_, PyAny>) -> PyResult<u64> {
        let mut pairs = Vec::new();
        for item in items.try_iter()? {
            let item = item?;
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyBytes>) = item.extract().map_err(|_| {
                PyTypeError::new_err("put_many takes an iterable of (key, bytes) pairs")
            })?;
            pairs.push((Key::extract(&k, self.kind)?, v.as_bytes().to_vec()));
        }
        let n = pairs.len() as u64;
        self.run(py, Op::Put(pairs)).map(|_| n)
    }

    /// Remove `key`; returns True when it was present.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        match self.run(py, Op::Delete(Key::extract(key, self.kind)?))? {
            Out::Deleted(b) => Ok(b),
            _ => unreachable!(),
        }
    }

    /// (key, value) pairs in key order from `start` (inclusive) to `end` (exclusive),
    /// or those whose str key starts with `prefix`; at most `limit`, last first when
    /// `reverse`.
    #[pyo3(signature = (start = None, end = None, *, prefix = None, limit = None, reverse = false))]
    fn range(
        &self,
        py: Python<'_>,
        start: Option<&Bound<'_, PyAny>>,
        end: Option<&Bound<'_, PyAny>>,
        prefix: Option<String>,
        limit: Option<usize>,
        reverse: bool,
    ) -> PyResult<Vec<(Py<PyAny>, Py<PyBytes>)>> {
        let mut scan = Scan {
            start: start.map(|k| Key::extract(k, self.kind)).transpose()?,
            end: end.map(|k| Key::extract(k, self.kind)).transpose()?,
            limit,
            reverse,
        };
        if let Some(p) = prefix {
            if self.kind != KeyKind::Str {
                return Err(PyTypeError::new_err("prefix scans need a str table"));
            }
            if scan.start.is_some() || scan.end.is_some() {
                return Err(PyValueError::new_err(
                    "give either prefix or start/end, not both",
                ));
            }
            scan.end = prefix_end(&p).map(Key::Str);
            scan.start = Some(Key::Str(p));
        }
        match self.run(py, Op::Scan(scan))? {
            Out::Rows(rows) => rows
                .into_iter()
                .map(|(k, v)| Ok((k.into_py(py)?, PyBytes::new(py, &v).unbind())))
                .collect(),
            _ => unreachable!(),
        }
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        match self.run(py, Op::Len)? {
            Out::Count(n) => Ok(n as usize),
            _ => unreachable!(),
        }
    }

    fn __repr__(&self) -> String {
        let kind = if self.kind == KeyKind::Str {
            "str"
        } else {
            "u64"
        };
        format!("<Table {} ({kind} keys)>", self.name)
    }
}

impl Table {
    fn run(&self, py: Python<'_>, op: Op) -> PyResult<Out> {
        match &self.txn {
            Txn::Write(w) => {
                let w = w.get();
                let path = w.path.clone();
                unlocked(py, &path, || {
                    let guard = lock(&w.txn);
                    let txn = guard
                        .as_ref()
                        .ok_or_else(|| closed("write transaction", &path))?;
                    match self.kind {
                        KeyKind::Str => write_op::<&str>(txn, &self.name, op),
                        KeyKind::U64 => write_op::<u64>(txn, &self.name, op),
                    }
                    .map_err(|e| to_py(e, &path))
                })
            }
            Txn::Read(r) => {
                let r = r.get();
                let path = r.path.clone();
                if matches!(op, Op::Put(_) | Op::Delete(_)) {
                    return Err(RedbError::new_err(format!(
                        "table {} is read-only in a read transaction: {path}",
                        self.name
                    )));
                }
                unlocked(py, &path, || {
                    let guard = lock(&r.txn);
                    let txn = guard
                        .as_ref()
                        .ok_or_else(|| closed("read transaction", &path))?;
                    match self.kind {
                        KeyKind::Str => snapshot_op::<&str>(txn, &self.name, op),
                        KeyKind::U64 => snapshot_op::<u64>(txn, &self.name, op),
                    }
                    .map_err(|e| to_py(e, &path))
                })
            }
        }
    }
}

#[pymodule]
fn _redb(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Database>()?;
    m.add_class::<WriteTransaction>()?;
    m.add_class::<ReadTransaction>()?;
    m.add_class::<Table>()?;
    m.add("RedbError", py.get_type::<RedbError>())?;
    m.add("DatabaseLockedError", py.get_type::<DatabaseLockedError>())?;
    m.add("RepairNeededError", py.get_type::<RepairNeededError>())?;
    m.add("CorruptionError", py.get_type::<CorruptionError>())?;
    m.add("TableTypeError", py.get_type::<TableTypeError>())?;
    m.add(
        "TransactionClosedError",
        py.get_type::<TransactionClosedError>(),
    )?;
    m.add("DEFAULT_CACHE_BYTES", DEFAULT_CACHE_BYTES)?;
    m.add("REDB_VERSION", "4.6.0")?;
    Ok(())
}
