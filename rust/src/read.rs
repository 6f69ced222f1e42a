//! One note read whole beneath an open folder, as ccc_watch/vault/read.py's `_read_in`
//! does it, in one call: the name's lstat, the open (the caller's flags: O_NOFOLLOW,
//! O_NONBLOCK, ...), the descriptor's fstat, the read, the fstat again and the name's
//! lstat again. In Python these are seven calls, each with its own objects; here, the
//! system calls alone.
//!
//! The outcome is a code, so that read.py raises its own exceptions as before:
//! OK (with the stat and the bytes), SYMLINK, NOT_REGULAR (the name, or the
//! descriptor: FD_NOT_REGULAR), CHANGED (read it again), or PYTHON: this call does not
//! read such a file (larger than `keep`, or a name that is no C string), read.py's own
//! path does. Any other failure is the OSError Python's os module would raise.

use std::ffi::CString;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

pub const OK: i32 = 0;
pub const SYMLINK: i32 = 1;
pub const NOT_REGULAR: i32 = 2;
pub const FD_NOT_REGULAR: i32 = 3;
pub const CHANGED: i32 = 4;
pub const PYTHON: i32 = 5;

/// Above this many bytes the read runs without the GIL; below, releasing it costs more
/// than it lets other threads do.
const DETACH_AT: i64 = 1 << 16;

/// (size, mtime_ns, ctime_ns, inode, device, mode) of a stat.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stat {
    size: i64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
    dev: u64,
    mode: libc::mode_t,
}

impl Stat {
    // The field types differ between platforms (dev_t, mode_t, time_t): the casts are
    // no-ops on some only.
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &libc::stat) -> Self {
        Stat {
            size: st.st_size as i64,
            mtime_ns: st.st_mtime as i64 * 1_000_000_000 + st.st_mtime_nsec as i64,
            ctime_ns: st.st_ctime as i64 * 1_000_000_000 + st.st_ctime_nsec as i64,
            ino: st.st_ino as u64,
            dev: st.st_dev as u64,
            mode: st.st_mode,
        }
    }

    fn is(&self, kind: libc::mode_t) -> bool {
        (self.mode & libc::S_IFMT) == kind
    }

    /// FileStat's fields: what read.py compares before and after a read.
    fn content(&self) -> (i64, i64, i64, u64) {
        (self.size, self.mtime_ns, self.ctime_ns, self.ino)
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// The OSError os.stat or os.open would raise for errno `code` on `name` (os.read's
/// names no file: `name` None).
fn os_error(code: i32, name: Option<&str>) -> PyErr {
    let text = std::io::Error::from_raw_os_error(code).to_string();
    // "No such file or directory (os error 2)": Python's strerror is the first part.
    let text = text
        .rsplit_once(" (os error")
        .map_or(text.as_str(), |(t, _)| t)
        .to_string();
    match name {
        Some(name) => PyOSError::new_err((code, text, name.to_string())),
        None => PyOSError::new_err((code, text)),
    }
}

/// Retry a call interrupted by a signal, after Python's handlers ran (PEP 475).
fn retried<T: PartialEq + Copy>(
    py: Python<'_>,
    fail: T,
    mut call: impl FnMut() -> T,
) -> PyResult<T> {
    loop {
        let got = call();
        if got != fail || errno() != libc::EINTR {
            return Ok(got);
        }
        py.check_signals()?;
    }
}

/// The stat `call` fills in, or the OSError os would raise (naming `name`, if any).
fn stat_by(
    py: Python<'_>,
    name: Option<&str>,
    mut call: impl FnMut(*mut libc::stat) -> libc::c_int,
) -> PyResult<Stat> {
    // SAFETY: a zeroed stat is a valid out-parameter for the call to fill in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if retried(py, -1, || call(&mut st))? == 0 {
        Ok(Stat::of(&st))
    } else {
        Err(os_error(errno(), name))
    }
}

/// The name's own stat (a symlink's, not its target's), as os.stat(follow_symlinks=False).
fn lstat_at(py: Python<'_>, folder: i32, name: &CString, text: &str) -> PyResult<Stat> {
    // SAFETY: name is a NUL-terminated string.
    stat_by(py, Some(text), |st| unsafe {
        libc::fstatat(folder, name.as_ptr(), st, libc::AT_SYMLINK_NOFOLLOW)
    })
}

/// The open descriptor's stat, as os.fstat.
fn fstat(py: Python<'_>, fd: i32) -> PyResult<Stat> {
    // SAFETY: fd is open for the whole call (Fd below closes it at the end).
    stat_by(py, None, |st| unsafe { libc::fstat(fd, st) })
}

/// Up to `limit` bytes of fd, to its end: one read when it gives `expect` bytes (the
/// size fstat said), on to the end or the limit otherwise.
fn read_upto(fd: i32, limit: usize, expect: usize) -> Result<Vec<u8>, i32> {
    let mut data: Vec<u8> = Vec::with_capacity(limit);
    while data.len() < limit {
        let want = limit - data.len();
        let spare = &mut data.spare_capacity_mut()[..want];
        // SAFETY: the buffer is the Vec's spare capacity, of spare.len() bytes.
        let n = unsafe { libc::read(fd, spare.as_mut_ptr().cast(), spare.len()) };
        if n < 0 {
            let code = errno();
            if code == libc::EINTR {
                continue; // no Python handler can run without the GIL: the next check does
            }
            return Err(code);
        }
        if n == 0 {
            break;
        }
        // SAFETY: read() initialised n bytes of the spare capacity.
        unsafe { data.set_len(data.len() + n as usize) };
        if data.len() == expect {
            break;
        }
    }
    Ok(data)
}

struct Fd(i32);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor was opened by this call and is closed once, here.
        unsafe { libc::close(self.0) };
    }
}

/// read_in(folder, name, keep, flags) -> (code, size, mtime_ns, ctime_ns, inode, data)
///
/// Reads the file `name` of the open folder `folder` whole when it has at most `keep`
/// bytes, opened with `flags`, as read.py's `_read_in` and `_read_fd` do; see the
/// module's text for the codes. size..inode and data are set with OK only.
#[pyfunction]
#[pyo3(name = "read_in")]
pub fn py_read_in<'py>(
    py: Python<'py>,
    folder: i32,
    name: &Bound<'py, PyString>,
    keep: i64,
    flags: i32,
) -> PyResult<Bound<'py, PyTuple>> {
    let done = |code: i32| (code, 0i64, 0i64, 0i64, 0u64, py.None()).into_pyobject(py);
    let Ok(text) = name.to_str() else {
        return done(PYTHON);
    };
    let Ok(cname) = CString::new(text) else {
        return done(PYTHON);
    };
    let before = lstat_at(py, folder, &cname, text)?;
    if before.is(libc::S_IFLNK) {
        return done(SYMLINK);
    }
    if !before.is(libc::S_IFREG) {
        return done(NOT_REGULAR);
    }
    if before.size > keep {
        return done(PYTHON); // hashed in chunks by read.py, never held whole
    }
    // SAFETY: cname is NUL-terminated; the descriptor is owned by `fd` from here on.
    let raw = retried(py, -1, || unsafe {
        libc::openat(folder, cname.as_ptr(), flags)
    })?;
    if raw < 0 {
        let code = errno();
        if code == libc::ELOOP || code == libc::EMLINK {
            return done(CHANGED); // swapped for a symlink just now
        }
        return Err(os_error(code, Some(text)));
    }
    let fd = Fd(raw);
    let opened = fstat(py, fd.0)?;
    if !opened.is(libc::S_IFREG) {
        return done(FD_NOT_REGULAR);
    }
    if opened.size > keep {
        return done(PYTHON);
    }
    let size = opened.size as usize;
    let fd_no = fd.0;
    let data = if opened.size > DETACH_AT {
        py.detach(|| read_upto(fd_no, size + 1, size))
    } else {
        read_upto(fd_no, size + 1, size)
    };
    py.check_signals()?;
    let data = data.map_err(|code| os_error(code, None))?;
    let after = fstat(py, fd.0)?;
    if data.len() as i64 != after.size || before.content() != after.content() {
        return done(CHANGED);
    }
    let now = lstat_at(py, folder, &cname, text)?; // FileNotFoundError: deleted meanwhile
    if (now.ino, now.dev) != (after.ino, after.dev) {
        return done(CHANGED); // replaced under its name (an atomic save)
    }
    drop(fd);
    let bytes = PyBytes::new(py, &data);
    (
        OK,
        after.size,
        after.mtime_ns,
        after.ctime_ns,
        after.ino,
        bytes,
    )
        .into_pyobject(py)
}
