//! The Unix socket file: replace a stale socket (and nothing else), create the new one owner-only
//! with no window where it is accessible to others, and remove it again on shutdown.
//!
//! Hand-over: a socket that still answers belongs to a live provider (the previous pod of a
//! rolling update, or another provider on the same path, such as the AKS add-on's); it is never
//! deleted. [`wait_for_handover`] waits, bounded and logged, until it stops answering, and only
//! then is it replaced; at exit the file is removed only if it is still ours (same inode and change time).
//!
//! The driver's only protection is the file mode of this socket (the provider API has no
//! authentication), so the socket is bound under `umask(0o077)` — as the Go provider does — and
//! then narrowed to `0600`.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::time::Instant;

use super::ServerError;

/// Mode of the socket file once bound.
pub const SOCKET_MODE: u32 = 0o600;
/// Umask while binding: the socket is created `0700` at most, never group/world accessible.
const BIND_UMASK: libc::mode_t = 0o077;

/// Serialises our own binds: the umask is per process.
static UMASK_LOCK: Mutex<()> = Mutex::new(());

/// The socket file we created; dropping it removes the file if it is still ours, so a newer
/// instance that already replaced it keeps its socket.
///
/// "Ours" is the same device, inode *and* change time (to the nanosecond, read after our chmod):
/// a successor removes our file and binds its own at once, and file systems hand the freed inode
/// number straight to the new file (seen on the CI machine), so the inode alone can call the
/// successor's socket ours.
#[derive(Debug)]
pub(super) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    ctime: (i64, i64),
}

impl SocketFile {
    fn is(&self, m: &fs::Metadata) -> bool {
        m.dev() == self.dev && m.ino() == self.ino && (m.ctime(), m.ctime_nsec()) == self.ctime
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        match fs::symlink_metadata(&self.path) {
            Ok(m) if self.is(&m) => {
                if let Err(e) = fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot remove the socket file");
                }
            }
            Ok(_) => {
                tracing::info!(path = %self.path.display(), "socket file replaced by another instance; leaving it")
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot inspect the socket file")
            }
        }
    }
}

/// How long one liveness probe of an existing socket may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Pause between two liveness probes while waiting for a hand-over.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Whether a process accepts connections on the socket at `path` (a full backlog counts as
/// alive; a refused connection or a missing file does not).
async fn is_live(path: &Path) -> bool {
    match tokio::time::timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await {
        Ok(Ok(_)) => true,
        Ok(Err(e)) => matches!(e.kind(), io::ErrorKind::WouldBlock),
        Err(_) => true,
    }
}

/// Waits until no process answers on the socket at `path` any more, for at most `timeout`
/// (`--socket-handover-timeout`); logs when it has to wait. Returns [`ServerError::InUse`] when
/// the socket still answers after that.
pub async fn wait_for_handover(path: &Path, timeout: Duration) -> Result<(), ServerError> {
    let is_socket = fs::symlink_metadata(path)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false);
    if !is_socket || !is_live(path).await {
        return Ok(());
    }
    tracing::info!(
        path = %path.display(),
        timeout = ?timeout,
        "another process serves this socket; waiting for it to exit before taking over"
    );
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        tokio::time::sleep(PROBE_INTERVAL).await;
        if !is_live(path).await {
            tracing::info!(path = %path.display(), "the previous provider has let go of the socket");
            return Ok(());
        }
    }
    Err(ServerError::InUse {
        path: path.to_owned(),
        waited: timeout,
    })
}

/// Binds `path`: removes a stale socket there (one that no process answers on), refuses a live
/// socket or anything else, creates the socket owner-only and sets it to [`SOCKET_MODE`].
pub(super) async fn bind(path: &Path) -> Result<(UnixListener, SocketFile), ServerError> {
    if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) && is_live(path).await {
        return Err(ServerError::InUse {
            path: path.to_owned(),
            waited: Duration::ZERO,
        });
    }
    remove_stale(path)?;
    let listener = bind_owner_only(path).map_err(|source| ServerError::Bind {
        endpoint: display(path),
        source,
    })?;
    fs::set_permissions(path, fs::Permissions::from_mode(SOCKET_MODE)).map_err(|source| {
        ServerError::Permissions {
            path: path.to_owned(),
            source,
        }
    })?;
    // After the chmod, which changes the file's ctime.
    let file = SocketFile::inspect(path)?;
    Ok((listener, file))
}

impl SocketFile {
    fn inspect(path: &Path) -> Result<Self, ServerError> {
        let m = fs::symlink_metadata(path).map_err(|source| ServerError::Inspect {
            path: path.to_owned(),
            source,
        })?;
        Ok(SocketFile {
            path: path.to_owned(),
            dev: m.dev(),
            ino: m.ino(),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

fn display(path: &Path) -> String {
    format!("unix://{}", path.display())
}

/// Removes a socket left by a previous run; anything that is not a socket is left alone.
fn remove_stale(path: &Path) -> Result<(), ServerError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ServerError::Inspect {
                path: path.to_owned(),
                source,
            });
        }
    };
    let kind = meta.file_type();
    if !kind.is_socket() {
        let kind = if kind.is_dir() {
            "directory"
        } else if kind.is_symlink() {
            "symbolic link"
        } else if kind.is_file() {
            "regular file"
        } else {
            "special file"
        };
        return Err(ServerError::NotASocket {
            path: path.to_owned(),
            kind,
        });
    }
    fs::remove_file(path).map_err(|source| ServerError::RemoveStale {
        path: path.to_owned(),
        source,
    })?;
    tracing::info!(path = %path.display(), "removed a stale socket file");
    Ok(())
}

fn bind_owner_only(path: &Path) -> io::Result<UnixListener> {
    // A poisoned lock only means another bind panicked; the umask was restored by its guard.
    let _lock = crate::sync::lock(&UMASK_LOCK);
    let _umask = UmaskGuard::set(BIND_UMASK);
    UnixListener::bind(path)
}

/// Sets the process umask and restores the previous one when dropped.
struct UmaskGuard(libc::mode_t);

// umask(2) has no safe wrapper in std; the one FFI call of the socket code.
#[allow(unsafe_code)]
impl UmaskGuard {
    fn set(mask: libc::mode_t) -> Self {
        // SAFETY: umask(2) only swaps the process file-mode creation mask; it cannot fail and has
        // no memory-safety preconditions.
        UmaskGuard(unsafe { libc::umask(mask) })
    }
}

#[allow(unsafe_code)]
impl Drop for UmaskGuard {
    fn drop(&mut self) {
        // SAFETY: as in `set`.
        unsafe { libc::umask(self.0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A successor's socket that got our freed inode number is not ours: only a file with our
    /// inode and our change time is removed.
    #[tokio::test]
    async fn a_reused_inode_number_is_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("azure.sock");
        let (listener, ours) = bind(&path).await.unwrap();
        drop(listener);
        fs::remove_file(&path).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let (_successor, theirs) = bind(&path).await.unwrap();
        // Ours as it would look had the file system handed the successor our inode number.
        let reused = SocketFile {
            path: path.clone(),
            dev: theirs.dev,
            ino: theirs.ino,
            ctime: ours.ctime,
        };
        std::mem::forget(ours);
        drop(reused);
        assert!(path.exists(), "the successor's socket was removed");
        drop(theirs);
        assert!(!path.exists(), "the successor removes its own socket");
    }
}
