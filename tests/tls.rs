//! TLS on the public listeners, tried with the real grpcurl: the CA's certificate is enough to
//! call, plaintext is refused, mTLS refuses a caller without a client certificate, and a reload
//! serves a new certificate to new connections while the open ones go on.

mod common;

use std::{path::Path, process::Command, sync::Arc};

use common::{ADMIN_TOKEN, TestApp};
use patchbay::ops::tls::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA, and certificates it signs.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self { cert, key }
    }

    /// A leaf for `names` (DNS names or IPs), as PEM (certificate, key).
    fn leaf(&self, names: &[&str]) -> (String, String) {
        let params = CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn write(&self, dir: &Path, name: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }
}

/// The server's files in `dir`: its certificate by `ca`, and optionally the client CA.
fn server_files(dir: &Path, ca: &Ca, client_ca: Option<&Ca>) -> TlsFiles {
    let (cert, key) = ca.leaf(&["localhost", "127.0.0.1"]);
    std::fs::write(dir.join("server.pem"), cert).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
    TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        client_ca: client_ca.map(|c| c.write(dir, "client-ca.pem")),
    }
}

/// Runs grpcurl off the runtime's thread (the server under test runs on it).
async fn grpcurl(args: &[&str]) -> (bool, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("grpcurl").args(["-max-time", "10"]).args(&args).output().expect("grpcurl on PATH");
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn grpcurl_with_the_cas_certificate_lists_the_services_and_plaintext_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("patchbay test CA");
    let app = TestApp::builder().demo().tls(server_files(dir.path(), &ca, None)).spawn().await;
    let addr = app.grpc_addr.to_string();
    let ca_pem = ca.write(dir.path(), "ca.pem").display().to_string();

    let (ok, out) = grpcurl(&["-cacert", &ca_pem, &addr, "list"]).await;
    assert!(ok && out.contains("patchbay.v1.AccountService"), "{out}");
    let (ok, out) = grpcurl(&["-plaintext", &addr, "list"]).await;
    assert!(!ok, "plaintext must be refused: {out}");
    let (ok, out) = grpcurl(&[&addr, "list"]).await;
    assert!(!ok, "a certificate no trusted CA signed must fail verification: {out}");
}

#[tokio::test]
async fn with_mtls_a_call_without_a_client_certificate_is_refused_and_one_with_it_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("patchbay test CA");
    let clients = Ca::new("CRM clients CA");
    let app = TestApp::builder().demo().tls(server_files(dir.path(), &ca, Some(&clients))).spawn().await;
    let addr = app.grpc_addr.to_string();
    let ca_pem = ca.write(dir.path(), "ca.pem").display().to_string();
    let (cert, key) = clients.leaf(&["crm.example"]);
    std::fs::write(dir.path().join("crm.pem"), cert).unwrap();
    std::fs::write(dir.path().join("crm.key"), key).unwrap();
    let (crm_pem, crm_key) =
        (dir.path().join("crm.pem").display().to_string(), dir.path().join("crm.key").display().to_string());

    let (ok, out) = grpcurl(&["-cacert", &ca_pem, &addr, "list"]).await;
    assert!(!ok, "no client certificate: refused: {out}");
    let (ok, out) = grpcurl(&["-cacert", &ca_pem, "-cert", &crm_pem, "-key", &crm_key, &addr, "list"]).await;
    assert!(ok && out.contains("grpc.health.v1.Health"), "{out}");
    // A certificate of another CA is refused too.
    let (cert, key) = Ca::new("someone else").leaf(&["crm.example"]);
    std::fs::write(dir.path().join("other.pem"), cert).unwrap();
    std::fs::write(dir.path().join("other.key"), key).unwrap();
    let other =
        (dir.path().join("other.pem").display().to_string(), dir.path().join("other.key").display().to_string());
    let (ok, out) = grpcurl(&["-cacert", &ca_pem, "-cert", &other.0, "-key", &other.1, &addr, "list"]).await;
    assert!(!ok, "{out}");
}

/// An HTTP/1.1 request on an open TLS connection to the callback listener: its status line.
async fn request(conn: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
    conn.write_all(b"GET /no-such-callback HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_to_new_connections_and_keeps_the_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = Ca::new("old CA");
    let app = TestApp::builder().demo().tls(server_files(dir.path(), &old_ca, None)).spawn().await;
    let old_pem = old_ca.write(dir.path(), "old-ca.pem").display().to_string();
    let addr = app.grpc_addr.to_string();

    // An open HTTPS connection to the callback listener, trusting the old CA.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(old_ca.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(app.http_addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut open = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap();
    assert!(request(&mut open).await.starts_with("HTTP/1.1 404"));

    // New files from another CA, then ReloadConfig (what SIGHUP does too).
    let new_ca = Ca::new("new CA");
    server_files(dir.path(), &new_ca, None);
    let new_pem = new_ca.write(dir.path(), "new-ca.pem").display().to_string();
    let auth = format!("authorization: Bearer {ADMIN_TOKEN}");
    let (ok, out) =
        grpcurl(&["-cacert", &old_pem, "-H", &auth, &addr, "patchbay.v1.RegistryService/ReloadConfig"]).await;
    assert!(ok, "{out}");
    assert!(!out.contains("TLS:"), "the new files are good: {out}");

    let (ok, out) = grpcurl(&["-cacert", &new_pem, &addr, "list"]).await;
    assert!(ok, "new connections get the new certificate: {out}");
    let (ok, _) = grpcurl(&["-cacert", &old_pem, &addr, "list"]).await;
    assert!(!ok, "and no longer the old one");
    assert!(request(&mut open).await.starts_with("HTTP/1.1 404"), "the open connection goes on");

    // A broken file is reported and the certificate in service stays.
    std::fs::write(dir.path().join("server.key"), "not a key").unwrap();
    let (ok, out) =
        grpcurl(&["-cacert", &new_pem, "-H", &auth, &addr, "patchbay.v1.RegistryService/ReloadConfig"]).await;
    assert!(ok && out.contains("TLS:") && out.contains("server.key"), "{out}");
    let (ok, out) = grpcurl(&["-cacert", &new_pem, &addr, "list"]).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_server_whose_tls_files_are_unusable_does_not_start_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = server_files(dir.path(), &Ca::new("CA"), None);
    files.key = dir.path().join("missing.key");
    let err = TestApp::builder().demo().tls(files).try_spawn().await.err().expect("refused");
    assert!(err.to_string().contains("missing.key"), "{err}");
}
