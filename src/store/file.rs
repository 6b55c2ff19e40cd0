//! A store of one file per session key in a directory: written whole by atomic rename, leased
//! with a lock file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{Lease, StoreFuture, StoredSession, TokenStore};
use crate::clock::Clock;
use crate::error::AuthError;

/// A [`TokenStore`] that keeps each session in a file of its own in a directory.
///
/// - **Files.** The session under key `k` lives in [`path(k)`](Self::path): `session-`, the key's
///   letters, digits, `-` and `_` (others as `_`, at most 48), and a hash of the whole key, with
///   `.json`; the entry also records its key, so two keys can never read each other's session.
///   The content is [`StoredSession::to_json`]: **the tokens in plain text**.
/// - **Permissions.** The directory is created (when missing) with mode `0700` and every file
///   with mode `0600` on Unix: only the owner reads them. Elsewhere, files get the directory's
///   default permissions: restrict the directory yourself.
/// - **Writes.** A save writes a temporary file in the same directory, flushes it to disk
///   (`fsync`), renames it over the entry and flushes the directory: a reader sees the old entry
///   or the new one, never part of one, and a crash leaves one of the two.
/// - **Leases.** A lease is a lock file beside the entry (`.lock`) holding a random holder and
///   its expiry, written aside and hard-linked into place (so it appears whole or not at all); a
///   lock past its expiry by the store's [`Clock`] is taken over, and only its holder removes it.
///
/// Blocking file operations run on tokio's blocking pool.
///
/// # Limitations
///
/// - Processes share sessions and leases through the filesystem: one host, or a network
///   filesystem with atomic rename and hard links and clocks in step (lease expiries are wall
///   times). A filesystem without hard links cannot lease: the layer then renews without one
///   (and logs each failure).
/// - Taking over a lapsed lock and releasing a lock each read the lock, then move it: two
///   processes doing so in the same instant may both believe they hold it, which costs at most
///   one rejected refresh and a login.
///
/// ```
/// use tower_token_auth::store::FileStore;
///
/// let store = FileStore::new("/var/lib/my-service/tokens");
/// let path = store.path("simacan/alice");
/// assert!(path.file_name().unwrap().to_str().unwrap().starts_with("session-simacan_alice-"));
/// ```
#[derive(Clone, Debug)]
pub struct FileStore {
    dir: PathBuf,
    clock: Clock,
}

impl FileStore {
    /// A store in `dir`, created on the first save or lease if missing. Nothing is read or
    /// written until then.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            clock: Clock::default(),
        }
    }

    /// The clock lease expiries are written and read by. Default: [`Clock::coarse`] (the
    /// system's wall clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds the session under `key`.
    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.json", stem(key)))
    }

    fn lock_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.lock", stem(key)))
    }
}

impl TokenStore for FileStore {
    fn load<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<StoredSession>> {
        let path = self.path(key);
        let key = key.to_owned();
        Box::pin(blocking(move || match fs::read(&path) {
            Ok(json) => StoredSession::from_json(&key, &json)
                .map(Some)
                .map_err(|e| {
                    let detail = format!("unusable entry {}", path.display());
                    AuthError::store(detail, Some(Box::new(e)))
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("cannot read", &path, e)),
        }))
    }

    fn save<'a>(&'a self, key: &'a str, session: &'a StoredSession) -> StoreFuture<'a, ()> {
        let (dir, path) = (self.dir.clone(), self.path(key));
        let json = session.to_json(key);
        Box::pin(blocking(move || {
            write_atomically(&dir, &path, &json).map_err(|e| io_error("cannot write", &path, e))
        }))
    }

    fn lease<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Option<Lease>> {
        let (dir, lock) = (self.dir.clone(), self.lock_path(key));
        let now = self.clock.wall();
        Box::pin(blocking(move || {
            try_lock(&dir, &lock, now, now + ttl).map_err(|e| io_error("cannot lease", &lock, e))
        }))
    }

    fn release<'a>(&'a self, key: &'a str, lease: Lease) -> StoreFuture<'a, ()> {
        let lock = self.lock_path(key);
        Box::pin(blocking(move || {
            take_away(&lock, Some(lease.holder()))
                .map(drop)
                .map_err(|e| io_error("cannot release", &lock, e))
        }))
    }
}

/// Runs `f` on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
) -> Result<T, AuthError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AuthError::store("file store task failed", Some(Box::new(e))))?
}

fn io_error(what: &str, path: &Path, error: io::Error) -> AuthError {
    AuthError::store(format!("{what} {}", path.display()), Some(Box::new(error)))
}

/// The file name of `key`'s files, without extension.
fn stem(key: &str) -> String {
    let readable: String = key
        .chars()
        .take(48)
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .collect();
    format!("session-{readable}-{:016x}", fnv1a(key.as_bytes()))
}

/// FNV-1a, 64 bits: stable across Rust releases and platforms, as file names must be.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A new file at `path`, readable and writable by its owner only; fails if `path` exists.
fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// A temporary file name beside `path`, hidden and unique.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("entry");
    path.with_file_name(format!(".{name}.{:016x}.{suffix}", fastrand::u64(..)))
}

/// Writes `bytes` to a temporary file beside `path`, flushes it, renames it over `path` and
/// flushes the directory.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    create_dir(dir)?;
    let tmp = beside(path, "tmp");
    let written = (|| {
        let mut file = create_private(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if written.is_err() {
        // Gone already if the rename happened.
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_: &Path) -> io::Result<()> {
    Ok(())
}

/// What a lock file says.
enum Lock {
    Free,
    Held {
        holder: u64,
        until: SystemTime,
    },
    /// Not written by this store (it writes lock files whole): taken over as lapsed.
    Unreadable,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct LockFile {
    holder: String,
    expires_at_ms: u64,
}

fn read_lock(path: &Path) -> io::Result<Lock> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Lock::Free),
        Err(e) => return Err(e),
    };
    let parsed = serde_json::from_slice::<LockFile>(&bytes)
        .ok()
        .and_then(|f| {
            let holder = u64::from_str_radix(&f.holder, 16).ok()?;
            let until = UNIX_EPOCH.checked_add(Duration::from_millis(f.expires_at_ms))?;
            Some(Lock::Held { holder, until })
        });
    Ok(parsed.unwrap_or(Lock::Unreadable))
}

/// Takes the lock at `lock` until `until`, unless a holder has it beyond `now`.
fn try_lock(
    dir: &Path,
    lock: &Path,
    now: SystemTime,
    until: SystemTime,
) -> io::Result<Option<Lease>> {
    create_dir(dir)?;
    let lease = Lease::random();
    let content = LockFile {
        holder: format!("{:016x}", lease.holder()),
        expires_at_ms: until
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
    };
    let tmp = beside(lock, "tmp");
    let taken = (|| {
        let mut file = create_private(&tmp)?;
        file.write_all(&serde_json::to_vec(&content).unwrap_or_default())?;
        drop(file);
        // Twice at most: once more after taking a lapsed lock away.
        for _ in 0..2 {
            match fs::hard_link(&tmp, lock) {
                Ok(()) => return Ok(Some(lease)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            match read_lock(lock)? {
                Lock::Free => {}
                Lock::Held { until, .. } if now < until => return Ok(None),
                Lock::Held { holder, .. } => drop(take_away(lock, Some(holder))?),
                Lock::Unreadable => drop(take_away(lock, None)?),
            }
        }
        Ok(None)
    })();
    let _ = fs::remove_file(&tmp);
    taken
}

/// Removes the lock at `lock` if `holder` holds it (`None`: if it is unreadable). Moves it aside
/// first and checks what it moved, so that a lock another process took meanwhile is put back.
fn take_away(lock: &Path, holder: Option<u64>) -> io::Result<bool> {
    let aside = beside(lock, "old");
    match fs::rename(lock, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    let moved = match read_lock(&aside)? {
        Lock::Held { holder, .. } => Some(holder),
        Lock::Free | Lock::Unreadable => None,
    };
    let ours = moved == holder;
    if !ours {
        // Fails if yet another lock is in place by now: that one stands.
        let _ = fs::hard_link(&aside, lock);
    }
    fs::remove_file(&aside)?;
    Ok(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_readable_distinct_and_stable() {
        assert_eq!(
            stem("simacan/alice@example.com"),
            format!(
                "session-simacan_alice_example_com-{:016x}",
                fnv1a(b"simacan/alice@example.com")
            )
        );
        assert_ne!(stem("a/b"), stem("a_b"));
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let long = "x".repeat(500);
        assert!(stem(&long).len() < 100);
        assert!(!stem("../../etc/passwd").contains('/'));
    }
}
