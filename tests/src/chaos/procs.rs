//! Service processes the suite starts, kills and measures: a child that says `ready` on stdout
//! once its host serves, whose stderr is kept (panic lines counted), and whose memory is read
//! from `/proc/<pid>/status`.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// What a child wrote on stderr.
#[derive(Debug, Default)]
struct Stderr {
    /// The last lines.
    tail: Vec<String>,
    /// Lines that report a panic (`panicked at`).
    panics: Vec<String>,
}

const TAIL_LINES: usize = 200;

/// A running service process.
#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
    pid: u32,
    stderr: Arc<Mutex<Stderr>>,
    /// The peak RSS seen while it ran, kept after it exits.
    last_peak_kib: u64,
}

impl ServiceProcess {
    /// Starts `binary` with `args` and waits (at most `ready_within`) for it to print `ready`.
    pub async fn spawn<I, S>(
        binary: &Path,
        args: I,
        ready_within: Duration,
    ) -> Result<ServiceProcess, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let pid = child.id().ok_or("the child has no pid")?;
        let stderr = Arc::new(Mutex::new(Stderr::default()));
        if let Some(err) = child.stderr.take() {
            let log = Arc::clone(&stderr);
            tokio::spawn(async move {
                let mut lines = BufReader::new(err).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                    if line.contains("panicked at") {
                        log.panics.push(line.clone());
                    }
                    log.tail.push(line);
                    if log.tail.len() > TAIL_LINES {
                        log.tail.remove(0);
                    }
                }
            });
        }
        let out = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(out).lines();
        let ready = tokio::time::timeout(ready_within, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.trim() == "ready" {
                    return true;
                }
            }
            false
        })
        .await;
        // Keep draining stdout so the child never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let process = ServiceProcess {
            child,
            pid,
            stderr,
            last_peak_kib: 0,
        };
        match ready {
            Ok(true) => Ok(process),
            Ok(false) => Err(format!(
                "the process exited before it was ready:\n{}",
                process.stderr_tail(30)
            )),
            Err(_) => Err(format!(
                "the process was not ready within {ready_within:?}:\n{}",
                process.stderr_tail(30)
            )),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Kills it with SIGKILL (a crash: nothing is acked, nak'd or flushed) and reaps it.
    pub async fn kill9(&mut self) {
        self.sample_peak();
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// Asks it to stop (SIGTERM to its own pid) and waits at most `grace` before killing it.
    pub async fn terminate(&mut self, grace: Duration) {
        self.sample_peak();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            self.kill9().await;
        }
    }

    /// Whether it has exited.
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Its peak resident memory in KiB (`VmHWM`), while it runs; afterwards the last value read.
    pub fn peak_rss_kib(&mut self) -> u64 {
        self.sample_peak();
        self.last_peak_kib
    }

    /// Its current resident memory in KiB (`VmRSS`), while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        proc_status_kib(self.pid, "VmRSS:")
    }

    fn sample_peak(&mut self) {
        // Once reaped, the pid may belong to another process.
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if let Some(peak) = proc_status_kib(self.pid, "VmHWM:") {
            self.last_peak_kib = self.last_peak_kib.max(peak);
        }
    }

    /// The lines of stderr that report a panic.
    pub fn panics(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .panics
            .clone()
    }

    /// The last `lines` lines of its stderr.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let log = self.stderr.lock().unwrap_or_else(PoisonError::into_inner);
        let start = log.tail.len().saturating_sub(lines);
        log.tail[start..].join("\n")
    }
}

/// A `kB` field of `/proc/<pid>/status`.
fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}
