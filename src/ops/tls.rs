//! TLS for the public listeners (gRPC and vendor callbacks), with rustls: a certificate chain and
//! key from PEM files, and optionally a CA whose client certificates the gRPC listener requires
//! (mTLS). The files are read again on SIGHUP and RegistryService.ReloadConfig
//! ([`Tls::reload`]): new connections get the new certificate, connections already open keep
//! theirs, and a reload that fails keeps the one in service.
//!
//! rustls (with ring, which the vendor clients' TLS already uses) rather than OpenSSL: no system
//! library to match, and the handshake in safe Rust. Handshakes run in tasks of their own with a
//! time limit, so a client that opens a connection and says nothing holds nothing but its socket.

use std::{
    io,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, RwLock},
    task::{Context, Poll},
    time::Duration,
};

use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server to take them, at most.
const READY_QUEUE: usize = 64;

/// Where the listeners' certificate and key are, and the CA of gRPC clients' certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM, leaf first (`PATCHBAY_TLS_CERT`).
    pub cert: PathBuf,
    /// Its private key, PEM (`PATCHBAY_TLS_KEY`).
    pub key: PathBuf,
    /// With it, gRPC callers must present a certificate this CA signed (`PATCHBAY_TLS_CLIENT_CA`).
    pub client_ca: Option<PathBuf>,
}

/// A TLS file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {path}: {why}")]
pub struct TlsError {
    pub path: String,
    pub why: String,
}

fn problem(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError { path: path.display().to_string(), why: why.to_string() }
}

/// Which listener a configuration is for: gRPC speaks HTTP/2, the callback listener HTTP/1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Grpc,
    Http,
}

/// The listeners' TLS configurations, replaceable while serving.
pub struct Tls {
    files: TlsFiles,
    grpc: RwLock<Arc<ServerConfig>>,
    http: RwLock<Arc<ServerConfig>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the files; any problem names the file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let (grpc, http) = configs(&files)?;
        Ok(Arc::new(Self { files, grpc: RwLock::new(grpc), http: RwLock::new(http) }))
    }

    /// Reads the files again and serves new connections with them; on a problem the
    /// configuration in service stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let (grpc, http) = configs(&self.files)?;
        *self.grpc.write().unwrap_or_else(|e| e.into_inner()) = grpc;
        *self.http.write().unwrap_or_else(|e| e.into_inner()) = http;
        tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
        Ok(())
    }

    fn current(&self, listener: Listener) -> Arc<ServerConfig> {
        let slot = match listener {
            Listener::Grpc => &self.grpc,
            Listener::Http => &self.http,
        };
        Arc::clone(&slot.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Accepts TCP connections on `tcp` and hands out the ones whose handshake succeeded (with
    /// TCP_NODELAY set). Ends when `tcp`'s accept loop is dropped with the receiver.
    pub fn incoming(self: &Arc<Self>, tcp: TcpListener, listener: Listener) -> mpsc::Receiver<TlsConn> {
        let (ready_tx, ready_rx) = mpsc::channel(READY_QUEUE);
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = ready_tx.closed() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of descriptors and the like: back off instead of spinning.
                            tracing::warn!(error = %e, "accepting a connection failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let _ = stream.set_nodelay(true);
                let acceptor = TlsAcceptor::from(tls.current(listener));
                let ready_tx = ready_tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready_tx.send(TlsConn { inner: tls, peer }).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake refused"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        ready_rx
    }
}

fn configs(files: &TlsFiles) -> Result<(Arc<ServerConfig>, Arc<ServerConfig>), TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| problem(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| problem(&files.cert, e))?;
    if chain.is_empty() {
        return Err(problem(&files.cert, "holds no PEM certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| problem(&files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = || {
        ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
    };
    let grpc = match &files.client_ca {
        None => builder().with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| problem(ca, e))? {
                roots.add(cert.map_err(|e| problem(ca, e))?).map_err(|e| problem(ca, e))?;
            }
            if roots.is_empty() {
                return Err(problem(ca, "holds no PEM certificate"));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| problem(ca, e))?;
            builder().with_client_cert_verifier(verifier)
        }
    };
    let mut grpc = grpc.with_single_cert(chain.clone(), key.clone_key()).map_err(|e| problem(&files.key, e))?;
    grpc.alpn_protocols = vec![b"h2".to_vec()];
    let mut http = builder().with_no_client_auth().with_single_cert(chain, key).map_err(|e| problem(&files.key, e))?;
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(grpc), Arc::new(http)))
}

/// A connection whose TLS handshake is done.
pub struct TlsConn {
    inner: TlsStream<TcpStream>,
    peer: std::net::SocketAddr,
}

impl TlsConn {
    pub fn peer(&self) -> std::net::SocketAddr {
        self.peer
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = std::net::SocketAddr;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer
    }
}

/// The callback listener over TLS, for `axum::serve`.
pub struct HttpsListener {
    ready: mpsc::Receiver<TlsConn>,
    local: std::net::SocketAddr,
}

impl HttpsListener {
    pub fn new(tls: &Arc<Tls>, tcp: TcpListener) -> io::Result<Self> {
        let local = tcp.local_addr()?;
        Ok(Self { ready: tls.incoming(tcp, Listener::Http), local })
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsConn;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => {
                let peer = conn.peer;
                (conn, peer)
            }
            // The accept loop only ends when this receiver is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
