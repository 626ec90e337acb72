//! A private PostgreSQL cluster from the machine's own binaries: the default when no
//! `DATABASE_URL` is given, and what the tests use.
//!
//! The cluster lives in a data directory of ours (initdb on first start, so data survives
//! restarts) and listens on a free loopback port only. `postgres` runs as our child, not as a
//! daemon: the kernel sends it SIGINT (PostgreSQL's "fast shutdown") if we die, so a crashed
//! server or test run never leaves a cluster behind. As root, the cluster runs as the `postgres`
//! user, since PostgreSQL refuses to run as root.

use std::{
    ffi::CString,
    fs,
    io::{self, Read, Seek, SeekFrom},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// Why the embedded cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error(
        "no PostgreSQL server binaries found (looked for initdb and postgres on PATH, in `pg_config --bindir` \
         and in /usr/lib/postgresql/*/bin). Either install PostgreSQL (e.g. `apt-get install postgresql`) so \
         that patchbay can run a private cluster, or set DATABASE_URL to a server you run"
    )]
    NoBinaries,
    #[error(
        "PostgreSQL must run as the `{user}` user, which cannot reach {dir}: {blocker} is mode {mode:o}. \
         Set PATCHBAY_DATA_DIR to a folder every user can traverse (e.g. /var/lib/patchbay), or set DATABASE_URL"
    )]
    NotTraversable { user: String, dir: PathBuf, blocker: PathBuf, mode: u32 },
    #[error("running as root, but there is no `postgres` user to run PostgreSQL as; create one or set DATABASE_URL")]
    NoPostgresUser,
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("PostgreSQL did not become ready within {0:?}; its log: {1}")]
    NotReady(Duration, String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> EmbeddedError {
    let context = context.into();
    move |source| EmbeddedError::Io { context, source }
}

/// How to start the cluster.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// The cluster's data directory (created if missing).
    pub data_dir: PathBuf,
    /// `fsync` and synchronous commit. Off only for throwaway test clusters.
    pub durable: bool,
    pub max_connections: u32,
}

impl EmbeddedOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self { data_dir: data_dir.into(), durable: true, max_connections: 200 }
    }
}

/// A running private cluster. Stopped (fast shutdown) by [`EmbeddedPostgres::stop`] or on drop.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    port: u16,
    pid: u32,
    exited: mpsc::Receiver<()>,
    stopped: bool,
    /// The cluster's data directory: a postmaster started on it by hand (after ours was stopped)
    /// is found by its `postmaster.pid` and stopped with ours.
    data_dir: PathBuf,
}

const SUPERUSER: &str = "patchbay";

impl EmbeddedPostgres {
    /// Starts the cluster, running initdb first if the data directory is new.
    pub fn start(opts: &EmbeddedOptions) -> Result<Self, EmbeddedError> {
        Self::start_on(opts, None)
    }

    /// Starts the cluster on `port` (one attempt): a cluster stopped and started again where its
    /// clients expect it (the tests of a database outage do this).
    pub fn start_on_port(opts: &EmbeddedOptions, port: u16) -> Result<Self, EmbeddedError> {
        Self::start_on(opts, Some(port))
    }

    fn start_on(opts: &EmbeddedOptions, fixed_port: Option<u16>) -> Result<Self, EmbeddedError> {
        let bin = find_bindir().ok_or(EmbeddedError::NoBinaries)?;
        let run_as = if unsafe { libc::geteuid() } == 0 { Some(postgres_user()?) } else { None };
        fs::create_dir_all(&opts.data_dir).map_err(io_err(format!("creating {}", opts.data_dir.display())))?;
        let data_dir = opts.data_dir.canonicalize().map_err(io_err("resolving the data directory"))?;
        if let Some(user) = &run_as {
            check_traversable(&data_dir, user)?;
            chown(&data_dir, user)?;
        }
        fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err("securing the data directory"))?;

        if !data_dir.join("PG_VERSION").exists() {
            let mut initdb = Command::new(bin.join("initdb"));
            initdb
                .arg("-D")
                .arg(&data_dir)
                .args(["-U", SUPERUSER, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-instructions"])
                .stdin(Stdio::null());
            if let Some(user) = &run_as {
                initdb.uid(user.uid).gid(user.gid);
            }
            run(&mut initdb, "initdb")?;
        }

        let log_path = data_dir.join("postgres.log");
        // The port is chosen free and handed over; another process may take it in between, so retry.
        if let Some(port) = fixed_port {
            return launch(&bin, &data_dir, &log_path, port, run_as.as_ref(), opts);
        }
        let mut last_error = None;
        for _ in 0..3 {
            let port = free_port().map_err(io_err("finding a free port"))?;
            match launch(&bin, &data_dir, &log_path, port, run_as.as_ref(), opts) {
                Ok(pg) => return Ok(pg),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.expect("three attempts"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster this process started.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A URL for database `db` of the cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{db}", self.port)
    }

    /// Fast shutdown: open sessions end, committed data is on disk.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        // SAFETY: signalling our own child by pid; it is reaped only by its supervisor thread.
        unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGINT) };
        if self.exited.recv_timeout(Duration::from_secs(30)).is_err() {
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
            let _ = self.exited.recv_timeout(Duration::from_secs(5));
        }
        // Whoever runs on our data directory now (an operator's `pg_ctl start` after ours went
        // away) is ours to stop too: the cluster must not outlive the server that owns it.
        if let Some(pid) = postmaster_on(&self.data_dir)
            && pid != self.pid
        {
            tracing::info!(pid, "stopping the cluster started on the data directory since");
            stop_pid(pid);
        }
    }
}

/// The pid of a live postmaster on `data_dir`, from its `postmaster.pid` (first line: the pid;
/// second: the data directory it serves).
fn postmaster_on(data_dir: &Path) -> Option<u32> {
    let text = fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid: u32 = lines.next()?.trim().parse().ok()?;
    let dir = lines.next()?.trim();
    let same = Path::new(dir).canonicalize().ok()? == data_dir.canonicalize().ok()?;
    // SAFETY: signal 0 only asks whether the process exists.
    let alive = unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    (same && alive).then_some(pid)
}

/// Fast shutdown of a postmaster that is not our child: SIGINT, then SIGKILL after 30 s.
fn stop_pid(pid: u32) {
    let alive = || unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    // SAFETY: signalling a postmaster found on our own data directory.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive() {
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn launch(
    bin: &Path,
    data_dir: &Path,
    log_path: &Path,
    port: u16,
    run_as: Option<&User>,
    opts: &EmbeddedOptions,
) -> Result<EmbeddedPostgres, EmbeddedError> {
    let log =
        fs::OpenOptions::new().create(true).append(true).open(log_path).map_err(io_err("opening postgres.log"))?;
    if let Some(user) = run_as {
        let _ = std::os::unix::fs::chown(log_path, Some(user.uid), Some(user.gid));
    }
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D").arg(data_dir).args([
        "-p",
        &port.to_string(),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        "-c",
        &format!("max_connections={}", opts.max_connections),
    ]);
    if !opts.durable {
        cmd.args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
    }
    cmd.stdin(Stdio::null()).stdout(log.try_clone().map_err(io_err("postgres.log"))?).stderr(log);
    if let Some(user) = run_as {
        cmd.uid(user.uid).gid(user.gid);
    }
    // SAFETY: prctl is async-signal-safe. Changing uid clears the parent-death signal, and std
    // applies uid/gid before pre_exec hooks, so this survives into postgres.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }

    // The parent-death signal fires when the *thread* that forked exits, so the child is spawned
    // and reaped by a thread that lives exactly as long as the child.
    let (spawned_tx, spawned_rx) = mpsc::channel::<io::Result<u32>>();
    let (exited_tx, exited_rx) = mpsc::channel::<()>();
    thread::Builder::new()
        .name("postgres-supervisor".into())
        .spawn(move || {
            let mut child: Child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let _ = spawned_tx.send(Err(e));
                    return;
                }
            };
            let _ = spawned_tx.send(Ok(child.id()));
            let _ = child.wait();
            let _ = exited_tx.send(());
        })
        .map_err(io_err("starting the postgres supervisor thread"))?;
    let pid = spawned_rx
        .recv()
        .map_err(|_| EmbeddedError::Command { what: "postgres".into(), detail: "supervisor died".into() })?
        .map_err(io_err("starting postgres"))?;

    let mut pg = EmbeddedPostgres { port, pid, exited: exited_rx, stopped: false, data_dir: data_dir.to_owned() };
    let timeout = Duration::from_secs(60);
    let deadline = Instant::now() + timeout;
    loop {
        if pg.exited.try_recv().is_ok() {
            pg.stopped = true;
            return Err(EmbeddedError::Command { what: "postgres".into(), detail: log_tail(log_path, log_start) });
        }
        if accepts_sessions(port) {
            return Ok(pg);
        }
        if Instant::now() > deadline {
            pg.stop();
            return Err(EmbeddedError::NotReady(timeout, log_tail(log_path, log_start)));
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// True once the server answers a startup packet with an authentication request (not "the
/// database system is starting up").
fn accepts_sessions(port: u16) -> bool {
    use std::io::Write;
    let Ok(mut stream) =
        TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    // StartupMessage, protocol 3.0, user=patchbay database=postgres.
    let mut body = Vec::new();
    body.extend_from_slice(&196608u32.to_be_bytes());
    for (k, v) in [("user", SUPERUSER), ("database", "postgres")] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    if stream.write_all(&msg).is_err() {
        return false;
    }
    let mut first = [0u8; 1];
    // 'R' = authentication request/ok: the server takes sessions. 'E' = error (e.g. starting up).
    matches!(stream.read_exact(&mut first), Ok(()) if first[0] == b'R')
}

fn log_tail(path: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.seek(SeekFrom::Start(from));
        let _ = f.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    if tail.is_empty() { format!("(nothing in {})", path.display()) } else { tail }
}

fn run(cmd: &mut Command, what: &str) -> Result<(), EmbeddedError> {
    let out = cmd.output().map_err(io_err(format!("running {what}")))?;
    if out.status.success() {
        return Ok(());
    }
    let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if detail.is_empty() {
        detail = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    }
    Err(EmbeddedError::Command { what: what.into(), detail })
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// The directory holding `initdb` and `postgres`: on PATH, at `pg_config --bindir`, or the newest
/// `/usr/lib/postgresql/*/bin` (Debian and Ubuntu keep the server binaries off PATH).
pub fn find_bindir() -> Option<PathBuf> {
    find_bindir_in(std::env::var_os("PATH").as_deref(), Some(Path::new("pg_config")), Path::new("/usr/lib/postgresql"))
}

fn find_bindir_in(path: Option<&std::ffi::OsStr>, pg_config: Option<&Path>, versions_root: &Path) -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(path) = path {
        for dir in std::env::split_paths(path) {
            if has_both(&dir) {
                return Some(dir);
            }
        }
    }
    if let Some(pg_config) = pg_config
        && let Ok(out) = Command::new(pg_config).arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if has_both(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir(versions_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

#[derive(Debug, Clone)]
struct User {
    name: String,
    uid: u32,
    gid: u32,
}

fn postgres_user() -> Result<User, EmbeddedError> {
    let name = CString::new("postgres").expect("no NUL");
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r writes into our buffers only; `result` is null or points at `pwd`.
    let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return Err(EmbeddedError::NoPostgresUser);
    }
    Ok(User { name: "postgres".into(), uid: pwd.pw_uid, gid: pwd.pw_gid })
}

/// Every folder above `dir` must let `user` through, or PostgreSQL cannot open its data.
fn check_traversable(dir: &Path, user: &User) -> Result<(), EmbeddedError> {
    for ancestor in dir.ancestors().skip(1) {
        let meta = fs::metadata(ancestor).map_err(io_err(format!("checking {}", ancestor.display())))?;
        let mode = meta.permissions().mode();
        use std::os::unix::fs::MetadataExt;
        let ok = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !ok {
            return Err(EmbeddedError::NotTraversable {
                user: user.name.clone(),
                dir: dir.to_path_buf(),
                blocker: ancestor.to_path_buf(),
                mode: mode & 0o777,
            });
        }
    }
    Ok(())
}

fn chown(dir: &Path, user: &User) -> Result<(), EmbeddedError> {
    std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid)).map_err(io_err(format!("chown {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_binaries_anywhere_is_one_error_naming_both_ways_out() {
        let empty = tempfile::tempdir().unwrap();
        let found = find_bindir_in(Some(empty.path().as_os_str()), None, &empty.path().join("none"));
        assert_eq!(found, None);
        let message = EmbeddedError::NoBinaries.to_string();
        assert!(message.contains("install PostgreSQL"), "{message}");
        assert!(message.contains("set DATABASE_URL"), "{message}");
    }

    #[test]
    fn the_newest_versioned_bindir_wins_when_nothing_is_on_path() {
        let root = tempfile::tempdir().unwrap();
        for version in ["13", "15", "9"] {
            let bin = root.path().join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            fs::write(bin.join("initdb"), "").unwrap();
            fs::write(bin.join("postgres"), "").unwrap();
        }
        let found = find_bindir_in(None, None, root.path());
        assert_eq!(found, Some(root.path().join("15").join("bin")));
    }
}
