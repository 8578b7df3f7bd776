//! Holds the wire contract to its documentation: a Python client (`tests/python/interop.py`,
//! written from `docs/PROTOCOL.md` with nats-py only) calls, publishes to and discovers the
//! services of `generated-example serve`.
//!
//! Python comes from `NATSGEN_PYTHON` (a venv with nats-py, as `.ci/run` prepares), else from a
//! venv the tests make in the user's cache (`tests/python/provision.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[path = "../../tests/python/provision.rs"]
mod provision;

struct Serving(Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_python_client_speaks_the_documented_protocol() {
    let python = provision::python_with(&["nats"]);
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
