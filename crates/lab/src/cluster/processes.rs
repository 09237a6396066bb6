//! The processes a cluster directory has: the launcher that holds its lock, and nodes (or a
//! Prometheus) left running by an earlier launch. Found through the kernel (a lock, /proc),
//! never through the pids an old `cluster.json` names, which may belong to anyone by now.

use std::path::{Path, PathBuf};

/// A process that is still running from an earlier launch in the same directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Stale {
    pub pid: u32,
    pub what: String,
}

/// Processes whose command line names one of `dir`'s node directories or its Prometheus
/// directory: what a launcher that crashed (or is still running) left. Found by scanning
/// /proc, not by trusting pids in an old `cluster.json`, which the kernel may have given to
/// someone else since.
pub fn find_stale(dir: &Path) -> Vec<Stale> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let needles = [
        dir.join("node-").to_string_lossy().into_owned(),
        dir.join("prometheus/").to_string_lossy().into_owned(),
    ];
    processes()
        .filter(|(_, args)| {
            args.iter()
                .any(|a| needles.iter().any(|n| a.contains(n.as_str())))
        })
        .map(|(pid, args)| Stale {
            pid,
            what: args.join(" "),
        })
        .collect()
}

/// The file a launcher holds locked for as long as it runs, with its pid inside. The
/// kernel drops the lock when the launcher exits, however it exits (kill -9 included), so a
/// held lock is a launcher alive, where a pid in `cluster.json` may by now be anyone's.
pub const LOCK_FILE: &str = "launcher.lock";

/// This process's hold on a cluster directory, released when dropped.
#[derive(Debug)]
pub struct LauncherLock {
    _file: std::fs::File,
}

/// Why a directory's launcher lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("a launcher (pid {pid}) already runs a cluster in {dir}")]
    Held { pid: u32, dir: PathBuf },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Takes `dir`'s launcher lock for this process and writes its pid into it.
pub fn lock_launcher(dir: &Path) -> Result<LauncherLock, LockError> {
    use std::io::Write;
    let path = dir.join(LOCK_FILE);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    if try_lock(&file).map_err(io)? {
        file.set_len(0).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        return Ok(LauncherLock { _file: file });
    }
    Err(LockError::Held {
        pid: holder(&path).unwrap_or(0),
        dir: dir.to_path_buf(),
    })
}

/// The launcher running a cluster in `dir`, if one does: whoever holds its lock.
pub fn find_launcher(dir: &Path) -> Option<u32> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::File::open(&path).ok()?;
    // Taking the lock means nobody held it; it is let go again at once with the file.
    if try_lock(&file).ok()? {
        return None;
    }
    holder(&path)
}

/// Takes an exclusive lock without waiting: `false` when another process holds it.
fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
    use rustix::fs::{flock, FlockOperation};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

fn holder(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Every other running process with its command line.
fn processes() -> impl Iterator<Item = (u32, Vec<String>)> {
    let me = std::process::id();
    procfs::process::all_processes()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(move |p| {
            let pid = u32::try_from(p.pid()).ok()?;
            if pid == me {
                return None;
            }
            let args = p.cmdline().ok()?;
            is_running(pid).then_some((pid, args))
        })
}

/// Alive and not a zombie.
pub fn is_running(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    procfs::process::Process::new(pid)
        .and_then(|p| p.stat())
        .is_ok_and(|stat| stat.state != 'Z' && stat.state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_naming_a_node_dir_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let node_dir = dir.path().join("node-3");
        std::fs::create_dir_all(&node_dir).unwrap();
        let canonical = std::fs::canonicalize(&node_dir).unwrap();
        // `sh -c CMD NAME`: NAME becomes $0, so it shows in /proc/PID/cmdline. A
        // second command keeps the shell from exec'ing `sleep` (which would drop NAME).
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("sleep 30; true")
            .arg(&canonical)
            .spawn()
            .unwrap();
        // Until the fork has exec'd, its cmdline is still this test binary's.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut stale = find_stale(dir.path());
        while !stale.iter().any(|s| s.pid == child.id()) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            stale = find_stale(dir.path());
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // The shell's fork for `sleep` carries the same command line until it execs: it may
        // be listed too, and rightly (it names the directory).
        assert!(stale.iter().any(|s| s.pid == child.id()), "{stale:?}");
        assert!(stale.iter().all(|s| s.what.contains("node-3")), "{stale:?}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !find_stale(dir.path()).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(find_stale(dir.path()).is_empty());
        assert!(is_running(std::process::id()));
    }

    #[test]
    fn a_launcher_holds_its_dir_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        assert_eq!(find_launcher(dir.path()), None);
        let lock = lock_launcher(dir.path()).unwrap();
        let me = std::process::id();
        assert_eq!(find_launcher(dir.path()), Some(me));
        assert_eq!(find_launcher(other.path()), None);
        match lock_launcher(dir.path()) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, me),
            other => panic!("a second launcher took a held directory: {other:?}"),
        }
        drop(lock);
        assert_eq!(
            find_launcher(dir.path()),
            None,
            "the lock went with its holder"
        );
        let again = lock_launcher(dir.path());
        assert!(again.is_ok(), "{again:?}");
    }
}
