//! A store of one file per session key in a directory: written whole by atomic rename, leased
//! with a lock file.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{lease_deadline, new_holder, StoredSession, TokenStore};
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
///   lock past its expiry by the store's [`Clock`] is taken over, and only its holder removes or
///   extends it (extending renames a rewritten lock over it).
/// - **Regular files only.** The entry and the lock are read only if they are regular files
///   (symbolic links to one included): the type is checked before opening, the open does not
///   block (`O_NONBLOCK` on Unix) and the opened file is checked again. Anything else there (a
///   FIFO, a device, a socket, a directory) is an error of kind
///   [`ErrorKind::Store`](crate::ErrorKind::Store) naming the path ("… is not a regular file"),
///   never a read that waits for a writer; the layer logs it and carries on, and its next save
///   replaces the entry. Temporary files are created exclusively, so nothing already at their
///   path is ever opened.
///
/// Blocking file operations run on tokio's blocking pool.
///
/// # Limitations
///
/// - Processes share sessions and leases through the filesystem: one host, or a network
///   filesystem with atomic rename and hard links and clocks in step (lease expiries are wall
///   times). A filesystem without hard links cannot lease: the layer then renews without one
///   (and logs each failure).
/// - Taking over a lapsed lock, extending and releasing a lock each read the lock, then move
///   it: two processes doing so in the same instant may both believe they hold it, which costs
///   at most one rejected refresh and a login.
/// - A filesystem that stops answering (a hung NFS or FUSE mount) blocks the file operation in
///   the kernel: the layer's call gives up after its timeout, but the blocking thread stays
///   stuck, and dropping the tokio runtime waits for it. Keep the directory on a local
///   filesystem, or on a network mount that fails its calls instead of hanging (NFS `soft`).
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

    /// The clock lease expiries are written and read by. Default: `Clock::default()` (the
    /// system's wall clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
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
    fn load(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<StoredSession>, AuthError>> + Send {
        let path = self.path(key);
        let key = key.to_owned();
        blocking(move || match read_regular(&path) {
            Ok(Some(json)) => StoredSession::from_json(&key, &json)
                .map(Some)
                .map_err(|e| {
                    let detail = format!("unusable entry {}", path.display());
                    AuthError::store(detail, Some(Box::new(e)))
                }),
            Ok(None) => Ok(None),
            Err(e) => Err(file_error("cannot read", Role::Entry, &path, e)),
        })
    }

    fn save(
        &self,
        key: &str,
        session: &StoredSession,
    ) -> impl Future<Output = Result<(), AuthError>> + Send {
        let (dir, path) = (self.dir.clone(), self.path(key));
        let json = session.to_json(key);
        blocking(move || {
            write_atomically(&dir, &path, &json)
                .map_err(|e| file_error("cannot write", Role::Entry, &path, e))
        })
    }

    fn lease(
        &self,
        key: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<Option<u64>, AuthError>> + Send {
        let (dir, lock) = (self.dir.clone(), self.lock_path(key));
        let now = self.clock.wall();
        blocking(move || {
            try_lock(&dir, &lock, now, lease_deadline(now, ttl))
                .map_err(|e| file_error("cannot lease", Role::Lock, &lock, e))
        })
    }

    fn extend(
        &self,
        key: &str,
        lease: u64,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, AuthError>> + Send {
        let lock = self.lock_path(key);
        let now = self.clock.wall();
        blocking(move || {
            extend_lock(&lock, lease, now, lease_deadline(now, ttl))
                .map_err(|e| file_error("cannot extend the lease", Role::Lock, &lock, e))
        })
    }

    fn release(&self, key: &str, lease: u64) -> impl Future<Output = Result<(), AuthError>> + Send {
        let lock = self.lock_path(key);
        blocking(move || {
            take_away(&lock, Some(lease))
                .map(drop)
                .map_err(|e| file_error("cannot release", Role::Lock, &lock, e))
        })
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

/// What a path is to the store, as errors name it.
#[derive(Clone, Copy)]
enum Role {
    Entry,
    Lock,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Entry => "session entry",
            Role::Lock => "lease lock",
        }
    }
}

fn file_error(what: &str, role: Role, path: &Path, error: io::Error) -> AuthError {
    if error.get_ref().is_some_and(|e| e.is::<NotRegular>()) {
        let detail = format!("{} {} is not a regular file", role.name(), path.display());
        return AuthError::store(detail, Some(Box::new(error)));
    }
    AuthError::store(format!("{what} {}", path.display()), Some(Box::new(error)))
}

/// Something other than a regular file where the store reads one.
#[derive(Debug)]
struct NotRegular(fs::FileType);

impl fmt::Display for NotRegular {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.0.is_dir() {
            "a directory"
        } else {
            special_kind(self.0)
        };
        write!(f, "found {kind} where a regular file belongs")
    }
}

impl std::error::Error for NotRegular {}

#[cfg(unix)]
fn special_kind(file_type: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: fs::FileType) -> &'static str {
    "a special file"
}

fn regular_only(file_type: fs::FileType) -> io::Result<()> {
    if file_type.is_file() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            NotRegular(file_type),
        ))
    }
}

/// The content of the regular file at `path`; `None` if nothing is there.
///
/// NOTE: opening a FIFO for reading waits for a writer, and a read of a device may never end:
/// either would hold a blocking thread, and with it the runtime's shutdown, forever. So the type
/// is checked first, the open cannot block (a FIFO swapped in after the check included), and the
/// opened file is checked again.
fn read_regular(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::metadata(path) {
        Ok(metadata) => regular_only(metadata.file_type())?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut file = match open_nonblocking(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let metadata = file.metadata()?;
    regular_only(metadata.file_type())?;
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(Some(bytes))
}

/// Opens `path` for reading without waiting for anything: on Unix with `O_NONBLOCK`, which makes
/// the open of a FIFO return at once (and changes nothing for a regular file).
fn open_nonblocking(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    options.open(path)
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
    let dir = open_nonblocking(dir)?;
    if !dir.metadata()?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the store's directory is not a directory",
        ));
    }
    dir.sync_all()
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
    let Some(bytes) = read_regular(path)? else {
        return Ok(Lock::Free);
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
) -> io::Result<Option<u64>> {
    create_dir(dir)?;
    let lease = new_holder();
    let tmp = beside(lock, "tmp");
    let taken = (|| {
        write_lock_file(&tmp, lease, until)?;
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

/// A new lock file at `path` saying that `lease` holds the lock until `until`.
fn write_lock_file(path: &Path, lease: u64, until: SystemTime) -> io::Result<()> {
    let content = LockFile {
        holder: format!("{:016x}", lease),
        expires_at_ms: super::session::unix_millis(until),
    };
    let mut file = create_private(path)?;
    // A struct of a string and an integer always serializes.
    file.write_all(&serde_json::to_vec(&content).unwrap_or_default())
}

/// Makes the lock at `lock` last until `until` if `lease` holds it and it has not lapsed by
/// `now`: a rewritten lock renamed over it, so that readers see the old one or the new one.
fn extend_lock(lock: &Path, lease: u64, now: SystemTime, until: SystemTime) -> io::Result<bool> {
    match read_lock(lock)? {
        Lock::Held {
            holder,
            until: held_until,
        } if holder == lease && now < held_until => {}
        Lock::Free | Lock::Held { .. } | Lock::Unreadable => return Ok(false),
    }
    let tmp = beside(lock, "tmp");
    let extended = write_lock_file(&tmp, lease, until).and_then(|()| fs::rename(&tmp, lock));
    if extended.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    extended.map(|()| true)
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
    let moved = match read_lock(&aside) {
        Ok(Lock::Held { holder, .. }) => Some(holder),
        Ok(Lock::Free | Lock::Unreadable) => None,
        Err(e) => {
            // Not ours to judge (not a regular file, unreadable): put back as it was.
            let _ = fs::hard_link(&aside, lock);
            let _ = fs::remove_file(&aside);
            return Err(e);
        }
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

    /// A directory of its own under the system's temporary one, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "tower-token-auth-unit-{name}-{}-{:016x}",
                std::process::id(),
                fastrand::u64(..)
            ));
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[cfg(unix)]
    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
    }

    /// None of these would return if they opened the FIFO the way `fs::read` does: no writer
    /// ever comes.
    #[cfg(unix)]
    #[test]
    fn fifos_are_refused_without_being_waited_on() {
        use std::os::unix::fs::FileTypeExt as _;

        let scratch = Scratch::new("fifo");
        let fifo = scratch.0.join("fifo");
        mkfifo(&fifo);
        let err = read_regular(&fifo).unwrap_err();
        assert_eq!(err.to_string(), "found a FIFO where a regular file belongs");
        let shown = file_error("cannot read", Role::Entry, &fifo, err).to_string();
        assert!(shown.contains("is not a regular file"), "{shown}");
        assert!(shown.contains("session entry"), "{shown}");
        assert!(read_lock(&fifo).is_err());
        // A lock that is a FIFO is neither taken over nor extended, and stays where it was.
        let now = SystemTime::now();
        let later = now + Duration::from_secs(60);
        assert!(try_lock(&scratch.0, &fifo, now, later).is_err());
        assert!(extend_lock(&fifo, 1, now, later).is_err());
        assert!(take_away(&fifo, Some(1)).is_err());
        assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        // Creating a file where a FIFO is fails at once (exclusive creation opens nothing).
        let err = create_private(&fifo).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        // A directory is refused too; a missing file is no error.
        assert!(read_regular(&scratch.0).is_err());
        assert_eq!(read_regular(&scratch.0.join("missing")).unwrap(), None);
    }

    #[test]
    fn a_lock_is_extended_only_by_its_live_holder() {
        let scratch = Scratch::new("extend");
        let lock = scratch.0.join("k.lock");
        let now = SystemTime::now();
        let secs = Duration::from_secs;
        let lease = try_lock(&scratch.0, &lock, now, now + secs(5))
            .unwrap()
            .unwrap();
        assert!(extend_lock(&lock, lease, now + secs(4), now + secs(9)).unwrap());
        assert!(!extend_lock(&lock, lease ^ 1, now, now + secs(9)).unwrap());
        // Held until 9 s now: a taker at 8 s finds it held.
        assert_eq!(
            try_lock(&scratch.0, &lock, now + secs(8), now + secs(20)).unwrap(),
            None
        );
        // Lapsed: never revived.
        assert!(!extend_lock(&lock, lease, now + secs(9), now + secs(20)).unwrap());
        // Far beyond any clock: capped, not an overflow.
        let taken = try_lock(
            &scratch.0,
            &lock,
            now + secs(10),
            lease_deadline(now, Duration::MAX),
        );
        assert!(taken.unwrap().is_some());
        let names: Vec<_> = fs::read_dir(&scratch.0).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left behind");
    }
}
