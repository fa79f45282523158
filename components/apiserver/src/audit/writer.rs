//! Writing audit events: one JSON line per event to `--audit-log-path` (`-` is stdout),
//! rotated by size as Kubernetes' log backend (lumberjack) rotates it.
//!
//! Requests never wait for the disk: events go into a bounded queue
//! (`--audit-log-batch-buffer-size`) drained by one writer thread. When the queue is full
//! the event is dropped, counted, and a warning says how many were lost — as Kubernetes'
//! batching backend drops what its buffer cannot hold.
//!
//! Rotation: a write that would take the file past `--audit-log-maxsize` megabytes (0:
//! 100, lumberjack's default) first renames it to `<name>-<UTC time>.<ext>` (`audit.log` →
//! `audit-2024-05-01T10-00-00.000.log`) and starts a new one; then backups beyond
//! `--audit-log-maxbackup` (newest kept) and older than `--audit-log-maxage` days are
//! removed (0: keep). The log directory is created 0700 and the log 0600.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};

use super::event::Event;

/// lumberjack's size when none is configured.
const DEFAULT_MAX_MB: u64 = 100;
const MEGABYTE: u64 = 1024 * 1024;
/// lumberjack's backup timestamp (`2006-01-02T15-04-05.000`).
const BACKUP_TIME_FORMAT: &str = "%Y-%m-%dT%H-%M-%S%.3f";
/// At most one warning about dropped or failed events per this interval.
const WARN_INTERVAL: Duration = Duration::from_secs(10);
/// Backup names tried when the current millisecond's name is taken.
const NAME_ATTEMPTS: i64 = 1000;

/// Where and how the log is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// A file, or `-` for stdout.
    pub path: String,
    pub max_size_mb: u64,
    pub max_backups: usize,
    pub max_age_days: u64,
    /// Events queued before new ones are dropped.
    pub buffer: usize,
}

/// A log file that rotates by size, named and pruned as lumberjack does.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    max_backups: usize,
    max_age: Option<chrono::Duration>,
    out: BufWriter<File>,
    size: u64,
}

impl RotatingFile {
    /// Opens (appending) or creates the log; `max_bytes` 0 means lumberjack's 100 MB.
    pub fn open(
        path: &Path,
        max_bytes: u64,
        max_backups: usize,
        max_age_days: u64,
    ) -> io::Result<RotatingFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max_bytes: if max_bytes == 0 {
                DEFAULT_MAX_MB * MEGABYTE
            } else {
                max_bytes
            },
            max_backups,
            max_age: (max_age_days > 0).then(|| chrono::Duration::days(max_age_days as i64)),
            out: BufWriter::new(file),
            size,
        })
    }

    /// Writes one line, rotating first when it would not fit. A line larger than the
    /// whole file size is refused, as lumberjack refuses it.
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = line.len() as u64;
        if len > self.max_bytes {
            return Err(io::Error::other(format!(
                "write length {len} exceeds maximum file size {}",
                self.max_bytes
            )));
        }
        if self.size + len > self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(line)?;
        self.size += len;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.out.flush()?;
        let now = Utc::now();
        let backup = (0..NAME_ATTEMPTS)
            .map(|ms| self.backup_name(now + chrono::Duration::milliseconds(ms)))
            .find(|p| !p.exists())
            .ok_or_else(|| io::Error::other("no free backup name for the audit log"))?;
        std::fs::rename(&self.path, &backup)?;
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.path)?;
        self.out = BufWriter::new(file);
        self.size = 0;
        self.prune(now)
    }

    fn prefix_and_ext(&self) -> (String, String) {
        let file = self
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Go's filepath.Ext: from the last dot of the base name.
        match file.rfind('.') {
            Some(i) => (file[..i].to_string(), file[i..].to_string()),
            None => (file, String::new()),
        }
    }

    fn backup_name(&self, at: DateTime<Utc>) -> PathBuf {
        let (prefix, ext) = self.prefix_and_ext();
        self.path
            .with_file_name(format!("{prefix}-{}{ext}", at.format(BACKUP_TIME_FORMAT)))
    }

    /// The backups next to the log with the time their names carry, newest first.
    pub fn backups(&self) -> io::Result<Vec<(DateTime<Utc>, PathBuf)>> {
        let (prefix, ext) = self.prefix_and_ext();
        let prefix = format!("{prefix}-");
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stamp) = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(&ext))
            else {
                continue;
            };
            if let Ok(t) = NaiveDateTime::parse_from_str(stamp, BACKUP_TIME_FORMAT) {
                out.push((t.and_utc(), entry.path()));
            }
        }
        out.sort_by_key(|b| std::cmp::Reverse(b.0));
        Ok(out)
    }

    /// lumberjack's clean-up: keep the newest `max_backups` (0: all), none older than
    /// `max_age`.
    fn prune(&self, now: DateTime<Utc>) -> io::Result<()> {
        if self.max_backups == 0 && self.max_age.is_none() {
            return Ok(());
        }
        for (i, (t, path)) in self.backups()?.into_iter().enumerate() {
            let too_many = self.max_backups > 0 && i >= self.max_backups;
            let too_old = self.max_age.is_some_and(|age| t < now - age);
            if too_many || too_old {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(())
    }
}

enum Output {
    Stdout(io::Stdout),
    File(RotatingFile),
}

impl Output {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        match self {
            Output::Stdout(s) => s.lock().write_all(line),
            Output::File(f) => f.write_line(line),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(s) => s.lock().flush(),
            Output::File(f) => f.flush(),
        }
    }
}

/// Rate-limited warnings with a running count.
struct Warner {
    what: &'static str,
    count: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl Warner {
    fn new(what: &'static str) -> Warner {
        Warner {
            what,
            count: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    fn hit(&self, error: Option<&io::Error>) {
        let total = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < WARN_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        match error {
            Some(e) => tracing::warn!(total, error = %e, "{}", self.what),
            None => tracing::warn!(total, "{}", self.what),
        }
    }
}

/// The queue to the writer thread.
pub struct Sink {
    tx: Mutex<Option<SyncSender<Event>>>,
    dropped: Warner,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Sink {
    /// Opens the log (so a bad path fails the start, not the first request) and starts
    /// the writer thread.
    pub fn start(opts: &Options) -> io::Result<Sink> {
        let out = if opts.path == "-" {
            Output::Stdout(io::stdout())
        } else {
            Output::File(RotatingFile::open(
                Path::new(&opts.path),
                opts.max_size_mb.saturating_mul(MEGABYTE),
                opts.max_backups,
                opts.max_age_days,
            )?)
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(opts.buffer.max(1));
        let thread = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_loop(rx, out))?;
        Ok(Sink {
            tx: Mutex::new(Some(tx)),
            dropped: Warner::new(
                "audit events dropped: the audit log writer is not keeping up; raise --audit-log-batch-buffer-size or log less (audit policy)",
            ),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues an event without waiting; a full queue drops it (counted, warned).
    pub fn send(&self, event: Event) {
        let Ok(tx) = self.tx.lock() else { return };
        let Some(tx) = tx.as_ref() else { return };
        match tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.hit(None)
            }
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.count.load(Ordering::Relaxed)
    }

    /// Writes what is queued and stops the writer.
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.close();
    }
}

fn write_loop(rx: Receiver<Event>, mut out: Output) {
    let failed = Warner::new("writing the audit log failed; events are lost until it works again");
    // Blocks until an event arrives or every sender is gone; flushes whenever the queue
    // is momentarily empty, so the log is current without a write per event.
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(ev) = next {
            if let Err(e) = out.write_line(&ev.to_line()) {
                failed.hit(Some(&e));
            }
            next = rx.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            failed.hit(Some(&e));
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::MicroTime;

    fn event(i: usize) -> Event {
        Event::new(
            format!("id-{i}"),
            "/api/v1/pods".into(),
            "list".into(),
            MicroTime::now(),
        )
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn rotation_renames_to_lumberjack_backups_and_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let line = event(0).to_line();
        // Room for three lines per file.
        let max = 3 * line.len() as u64 + 1;
        let mut f = RotatingFile::open(&path, max, 2, 0).unwrap();
        for _ in 0..12 {
            f.write_line(&line).unwrap();
        }
        f.flush().unwrap();
        assert_eq!(lines(&path).len(), 3, "the current file holds what fits");
        let backups = f.backups().unwrap();
        assert_eq!(backups.len(), 2, "{backups:?}");
        for (_, b) in &backups {
            let name = b.file_name().unwrap().to_string_lossy().into_owned();
            // audit-2024-05-01T10-00-00.000.log
            assert!(
                name.starts_with("audit-") && name.ends_with(".log"),
                "{name}"
            );
            let stamp = &name["audit-".len()..name.len() - ".log".len()];
            assert!(
                NaiveDateTime::parse_from_str(stamp, BACKUP_TIME_FORMAT).is_ok(),
                "{name}"
            );
            assert_eq!(lines(b).len(), 3, "{name}");
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(b).unwrap().permissions(),
            );
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_existing_log_is_appended_to_and_rotated_when_full() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/audit.log");
        let line = event(0).to_line();
        let max = 2 * line.len() as u64;
        {
            let mut f = RotatingFile::open(&path, max, 0, 0).unwrap();
            f.write_line(&line).unwrap();
            f.flush().unwrap();
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("logs"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
        let mut f = RotatingFile::open(&path, max, 0, 0).unwrap();
        f.write_line(&line).unwrap();
        f.flush().unwrap();
        assert_eq!(lines(&path).len(), 2, "appended, not truncated");
        f.write_line(&line).unwrap();
        f.flush().unwrap();
        assert_eq!(lines(&path).len(), 1);
        assert_eq!(
            f.backups().unwrap().len(),
            1,
            "maxbackup 0 keeps every backup"
        );
        let err = f.write_line(&vec![b'x'; max as usize + 1]).unwrap_err();
        assert!(
            err.to_string().contains("exceeds maximum file size"),
            "{err}"
        );
    }

    #[test]
    fn backups_older_than_max_age_are_removed_at_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let old = dir.path().join("audit-2001-01-01T00-00-00.000.log");
        let unrelated = dir.path().join("audit-notatime.log");
        std::fs::write(&old, "old\n").unwrap();
        std::fs::write(&unrelated, "keep\n").unwrap();
        let line = event(0).to_line();
        let mut f = RotatingFile::open(&path, line.len() as u64, 0, 30).unwrap();
        f.write_line(&line).unwrap();
        f.write_line(&line).unwrap();
        assert!(!old.exists(), "a backup older than maxage is removed");
        assert!(
            unrelated.exists(),
            "files not named like backups are left alone"
        );
        assert_eq!(f.backups().unwrap().len(), 1);
    }

    #[test]
    fn the_sink_writes_every_queued_event_as_one_json_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let sink = Sink::start(&Options {
            path: path.display().to_string(),
            max_size_mb: 1,
            max_backups: 1,
            max_age_days: 0,
            buffer: 10_000,
        })
        .unwrap();
        for i in 0..500 {
            sink.send(event(i));
        }
        sink.close();
        let got = lines(&path);
        assert_eq!(got.len(), 500);
        for (i, l) in got.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["auditID"], format!("id-{i}"));
        }
        assert_eq!(sink.dropped(), 0);
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        // No thread drains this queue: the second send finds it full.
        let sink = Sink {
            tx: Mutex::new(Some(tx)),
            dropped: Warner::new("dropped"),
            thread: Mutex::new(None),
        };
        let started = Instant::now();
        for i in 0..3 {
            sink.send(event(i));
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(sink.dropped(), 2);
        assert_eq!(
            rx.try_recv().map(|e| e.audit_id).ok().as_deref(),
            Some("id-0")
        );
    }
}
