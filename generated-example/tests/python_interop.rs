//! Holds the wire contract to its documentation: a Python client (`tests/python/interop.py`,
//! written from `docs/PROTOCOL.md` with nats-py only) calls, publishes to and discovers the
//! services of `generated-example serve`.
//!
//! Python comes from `NATSGEN_PYTHON` (a venv with nats-py, as `.ci/run` prepares), else from a
//! venv this test makes in the user's cache with `python3 -m venv` and `pip install nats-py`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const NATS_PY: &str = "nats-py==2.16.0";

fn python_with_nats_py() -> PathBuf {
    if let Some(python) = std::env::var_os("NATSGEN_PYTHON") {
        return PathBuf::from(python);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    let venv = cache.join("natsgen").join("py-interop");
    let python = venv.join("bin").join("python");
    let has_nats = |python: &Path| {
        Command::new(python)
            .args(["-c", "import nats"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_nats(&python) {
        let status = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .expect("run python3 -m venv");
        assert!(
            status.success(),
            "python3 -m venv {} failed",
            venv.display()
        );
        let status = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                NATS_PY,
            ])
            .status()
            .expect("run pip");
        assert!(status.success(), "pip install {NATS_PY} failed");
    }
    python
}

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_client_speaks_the_documented_protocol() {
    let python = python_with_nats_py();
    let server = natsgen::testing::NatsServer::start()
        .await
        .expect("nats-server");
    let mut child = Command::new(env!("CARGO_BIN_EXE_generated-example"))
        .args(["serve", "--delay-scale", "0.01"])
        .env("NATS_URL", server.url())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start generated-example serve");
    let stdout = child.stdout.take().expect("stdout");
    let serving = Serving(child);
    // `serve` prints "Serving ..." once every service is subscribed.
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| line.starts_with("Serving"))
    });
    let ready = tokio::time::timeout(Duration::from_secs(120), ready)
        .await
        .expect("serve starts in time");
    assert!(
        ready.expect("reader"),
        "generated-example serve exited before serving"
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/interop.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(server.url())
            .output()
            .expect("run python")
    })
    .await
    .expect("python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the Python client found a contract violation:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("passed, 0 failed"),
        "the script ran to the end:\n{stdout}"
    );
    drop(serving);
}
