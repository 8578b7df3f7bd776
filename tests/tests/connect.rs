//! Every connection option against a real nats-server configured to require it: each connects
//! (and serves a call) with the right credentials and fails with a clear error with wrong ones.
//!
//! Server configs, nkeys, JWTs and certificates are all made by the tests. (A server older than
//! 2.10 being refused is tested in `runtime/tests/rpc.rs` with a fake handshake.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use natsgen::testing::NatsServer;
use natsgen::{ConnectOptions, Connection, Context, Host, ServiceError};
use natsgen_tests::flaky::{FlakyService, FlakyServiceClient, FlakyServiceServer, RejectError};
use serde_json::{json, Value};
use tempfile::TempDir;

/// Bounds every wait of a test, so a runtime that hangs fails the test instead.
const PATIENCE: Duration = Duration::from_secs(60);

async fn within<F: std::future::IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future.into_future())
        .await
        .expect("the test waited too long: something hangs")
}

struct Echo;

impl FlakyService for Echo {
    async fn echo(&self, _ctx: &Context, text: String) -> Result<String, ServiceError> {
        Ok(format!("echo {text}"))
    }

    async fn hold(&self, _ctx: &Context, _text: String) -> Result<String, ServiceError> {
        Err(ServiceError::internal("not in these tests"))
    }

    async fn stall(&self, _ctx: &Context, _text: String) -> Result<String, ServiceError> {
        Err(ServiceError::internal("not in these tests"))
    }

    async fn reject(&self, _ctx: &Context, text: String) -> Result<String, RejectError> {
        Err(RejectError::Rejected { reason: text })
    }
}

/// A server (core NATS only) started with `config` as its configuration file.
async fn server_with_config(dir: &TempDir, config: &str) -> NatsServer {
    let path = dir.path().join("server.conf");
    std::fs::write(&path, config).unwrap();
    within(
        NatsServer::builder()
            .jetstream(false)
            .args(["-c".into(), path.into_os_string()])
            .start(),
    )
    .await
    .expect("nats-server starts with the config")
}

/// Connects a host and a caller with `options` and makes a call through them.
async fn serves_a_call(url: &str, options: ConnectOptions) {
    let host_nats = within(options.clone().connect(url)).await.unwrap();
    let caller = within(options.connect(url)).await.unwrap();
    let host = within(
        Host::new(host_nats)
            .serve(FlakyServiceServer::new(Echo))
            .start(),
    )
    .await
    .unwrap();
    let reply = within(FlakyServiceClient::new(&caller).echo("hi".into())).await;
    assert_eq!(reply.unwrap(), "echo hi");
    within(host.shutdown()).await.unwrap();
}

async fn connect_error(url: &str, options: ConnectOptions) -> natsgen::Error {
    match within(options.connect(url)).await {
        Ok(connection) => panic!("connected although it should not: {connection:?}"),
        Err(error) => error,
    }
}

/// The connection was refused for its credentials, and the message says to check them.
fn assert_refused(error: &natsgen::Error) {
    match error {
        natsgen::Error::Connect { source, .. } => assert_eq!(
            source.kind(),
            async_nats::ConnectErrorKind::AuthorizationViolation,
            "{error}"
        ),
        other => panic!("expected a connect error, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("the server refused the credentials"),
        "{message}"
    );
}

fn quoted(path: &Path) -> String {
    serde_json::to_string(&path.display().to_string()).unwrap()
}

#[tokio::test]
async fn user_and_password_and_nkey_users() {
    let dir = TempDir::new().unwrap();
    let nkey_user = nkeys::KeyPair::new_user();
    let server = server_with_config(
        &dir,
        &format!(
            r#"
authorization {{
  users = [
    {{user: "alice", password: "s3cret"}}
    {{nkey: "{}"}}
  ]
}}
"#,
            nkey_user.public_key()
        ),
    )
    .await;
    let url = server.url();

    serves_a_call(
        &url,
        ConnectOptions::new().user_and_password("alice", "s3cret"),
    )
    .await;
    assert_refused(
        &connect_error(
            &url,
            ConnectOptions::new().user_and_password("alice", "wrong"),
        )
        .await,
    );
    assert_refused(&connect_error(&url, ConnectOptions::new()).await);

    // Credentials in the URL work, and never show in an error (its message, its debug form, or
    // its sources).
    let with_password = url.replace("nats://", "nats://alice:s3cret@");
    serves_a_call(&with_password, ConnectOptions::new()).await;
    let wrong = url.replace("nats://", "nats://alice:hunter2-secret@");
    let error = connect_error(&wrong, ConnectOptions::new()).await;
    assert_refused(&error);
    let mut texts = vec![error.to_string(), format!("{error:?}")];
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        texts.push(inner.to_string());
        source = inner.source();
    }
    for text in texts {
        assert!(!text.contains("hunter2"), "{text}");
    }
    assert!(error.to_string().contains("alice:***@"), "{error}");

    serves_a_call(&url, ConnectOptions::new().nkey(nkey_user.seed().unwrap())).await;
    let stranger = nkeys::KeyPair::new_user();
    assert_refused(
        &connect_error(&url, ConnectOptions::new().nkey(stranger.seed().unwrap())).await,
    );
    let garbage = connect_error(&url, ConnectOptions::new().nkey("not-a-seed")).await;
    assert!(
        matches!(garbage, natsgen::Error::Connect { .. }),
        "{garbage:?}"
    );
}

#[tokio::test]
async fn token() {
    let dir = TempDir::new().unwrap();
    let server = server_with_config(&dir, r#"authorization { token: "t0k3n" }"#).await;
    let url = server.url();
    serves_a_call(&url, ConnectOptions::new().token("t0k3n")).await;
    assert_refused(&connect_error(&url, ConnectOptions::new().token("nope")).await);
    assert_refused(&connect_error(&url, ConnectOptions::new()).await);
}

/// A JWT of decentralized auth, signed by `issuer`.
fn jwt(issuer: &nkeys::KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"typ": "JWT", "alg": "ed25519-nkey"}).to_string());
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "jti": format!("{name}{issued_at}").to_uppercase(),
        "iat": issued_at,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = issuer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn user_creds(account: &nkeys::KeyPair, dir: &Path, file: &str) -> PathBuf {
    let user = nkeys::KeyPair::new_user();
    let user_jwt = jwt(
        account,
        &user.public_key(),
        "tester",
        json!({"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1,
               "type": "user", "version": 2}),
    );
    let creds = format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n",
        user.seed().unwrap()
    );
    let path = dir.join(file);
    std::fs::write(&path, creds).unwrap();
    path
}

#[tokio::test]
async fn credentials_file() {
    let dir = TempDir::new().unwrap();
    let operator = nkeys::KeyPair::new_operator();
    let account = nkeys::KeyPair::new_account();
    let operator_jwt = jwt(
        &operator,
        &operator.public_key(),
        "natsgen-test-operator",
        json!({"type": "operator", "version": 2}),
    );
    let account_jwt = jwt(
        &operator,
        &account.public_key(),
        "natsgen-test-account",
        json!({
            "limits": {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
                       "wildcards": true, "conn": -1, "leaf": -1},
            "default_permissions": {"pub": {}, "sub": {}},
            "type": "account", "version": 2,
        }),
    );
    let operator_path = dir.path().join("operator.jwt");
    std::fs::write(&operator_path, &operator_jwt).unwrap();
    let server = server_with_config(
        &dir,
        &format!(
            "operator: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{account_jwt}\"\n}}\n",
            quoted(&operator_path),
            account.public_key()
        ),
    )
    .await;
    let url = server.url();

    let good = user_creds(&account, dir.path(), "good.creds");
    serves_a_call(&url, ConnectOptions::new().credentials_file(&good)).await;

    // A user of an account the server does not know.
    let unknown_account = nkeys::KeyPair::new_account();
    let bad = user_creds(&unknown_account, dir.path(), "bad.creds");
    let error = connect_error(&url, ConnectOptions::new().credentials_file(&bad)).await;
    assert_refused(&error);

    let missing = dir.path().join("missing.creds");
    let error = connect_error(&url, ConnectOptions::new().credentials_file(&missing)).await;
    match &error {
        natsgen::Error::Credentials { path, .. } => assert_eq!(path, &missing),
        other => panic!("expected a credentials error, got {other:?}"),
    }
    assert!(
        error.to_string().contains("missing.creds"),
        "the message names the file: {error}"
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "natsgen test CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let ca = write("ca.pem", ca_cert.pem());
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, prefix: &str| {
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("natsgen test {prefix}"));
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        (
            write(&format!("{prefix}.pem"), cert.pem()),
            write(&format!("{prefix}-key.pem"), key.serialize_pem()),
        )
    };
    let (server_cert, server_key) = leaf(
        vec!["127.0.0.1".into(), "localhost".into()],
        ExtendedKeyUsagePurpose::ServerAuth,
        "server",
    );
    let (client_cert, client_key) = leaf(
        vec!["natsgen-client".into()],
        ExtendedKeyUsagePurpose::ClientAuth,
        "client",
    );
    Pki {
        ca,
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

#[tokio::test]
async fn mutual_tls() {
    let dir = TempDir::new().unwrap();
    let pki = make_pki(dir.path());
    let server = server_with_config(
        &dir,
        &format!(
            "tls {{\n  cert_file: {}\n  key_file: {}\n  ca_file: {}\n  verify: true\n  timeout: 5\n}}\n",
            quoted(&pki.server_cert),
            quoted(&pki.server_key),
            quoted(&pki.ca)
        ),
    )
    .await;
    let url = server.url();
    let trusted = ConnectOptions::new()
        .require_tls(true)
        .root_certificates(&pki.ca);

    serves_a_call(
        &url,
        trusted
            .clone()
            .client_certificate(&pki.client_cert, &pki.client_key),
    )
    .await;

    // No client certificate: the server refuses the handshake.
    let error = connect_error(&url, trusted.clone()).await;
    assert!(matches!(error, natsgen::Error::Connect { .. }), "{error:?}");
    // The server's CA not trusted: the client refuses the server.
    let error = connect_error(
        &url,
        ConnectOptions::new()
            .require_tls(true)
            .client_certificate(&pki.client_cert, &pki.client_key),
    )
    .await;
    assert!(matches!(error, natsgen::Error::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("UnknownIssuer"), "{message}");
    assert!(message.contains("the TLS handshake failed"), "{message}");
}

/// `GET path` on the server's monitoring port, as JSON.
async fn monitor_json(server: &NatsServer, path: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = server.monitor_url().expect("monitoring is on");
    let address = url.trim_start_matches("http://").to_owned();
    let mut stream = within(tokio::net::TcpStream::connect(address))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    within(stream.write_all(request.as_bytes())).await.unwrap();
    let mut response = Vec::new();
    within(stream.read_to_end(&mut response)).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let (_, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn the_connection_name_is_what_the_server_shows() {
    let server = within(NatsServer::builder().monitoring(true).start())
        .await
        .unwrap();
    let nats: Connection = within(
        ConnectOptions::new()
            .name("natsgen-connect-test")
            .connect(server.url()),
    )
    .await
    .unwrap();
    within(nats.flush()).await.unwrap();
    let connz = monitor_json(&server, "/connz").await;
    let names: Vec<&str> = connz["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|connection| connection["name"].as_str())
        .collect();
    assert!(names.contains(&"natsgen-connect-test"), "{connz}");
}
