//! The registry against hostile or broken tenant files (issue 15, items 2 and 3): nothing a file
//! holds or is can freeze a reload, grow memory without bound, or be skipped without a word, and
//! a slow reload never holds up other tenants' lookups.

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use patchbay::registry::{
    BuildContext, Registry,
    read::MAX_TENANT_FILE_BYTES,
    secrets::{SecretRef, SecretResolver, SystemSecrets},
    validate_dir,
};
use secrecy::SecretString;

const TOKEN: &str = "sha256:2d7b46a4c2a3e5e0f1d7c1a7c4e1c8e0a0f2b1c3d4e5f60718293a4b5c6d7e8f";

fn tenant(id: &str) -> String {
    format!("tenant: {id}\naccess:\n  tokens: [\"{TOKEN}\"]\n")
}

fn registry(dir: &Path, secrets: Arc<dyn SecretResolver>) -> Registry {
    let build = BuildContext::standalone();
    Registry::new(dir, patchbay::app::trigger_areas(), build, secrets)
}

fn problems(dir: &Path) -> Vec<String> {
    match validate_dir(dir, &patchbay::app::trigger_areas(), &SystemSecrets) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn fifos_dangling_symlinks_and_symlink_loops_named_like_tenant_files_are_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.yaml"), tenant("good")).unwrap();
    mkfifo(&dir.path().join("fifo.yaml"));
    std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("dangling.yaml")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("loop-b.yaml"), dir.path().join("loop-a.yaml")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("loop-a.yaml"), dir.path().join("loop-b.yaml")).unwrap();
    std::fs::create_dir(dir.path().join("folder.yaml")).unwrap();

    let started = Instant::now();
    let found = problems(dir.path());
    assert!(started.elapsed() < Duration::from_secs(5), "a FIFO never blocks the read");
    for (file, what) in [
        ("fifo.yaml", "is a FIFO (named pipe): only regular files are read"),
        ("dangling.yaml", "is a symlink to nothing"),
        ("loop-a.yaml", "is a symlink loop"),
        ("folder.yaml", "is a directory"),
    ] {
        assert!(found.iter().any(|l| l.contains(file) && l.contains(what)), "{file}: {found:#?}");
    }

    // The server serves the good tenant and reports the rest.
    let reg = registry(dir.path(), Arc::new(SystemSecrets));
    let report = reg.load(false).unwrap();
    assert_eq!(report.added, ["good"]);
    assert_eq!(report.diagnostics.len(), 5, "{:#?}", report.diagnostics);
}

#[test]
fn a_secret_file_that_is_a_device_a_fifo_or_too_big_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("secret.fifo");
    mkfifo(&fifo);
    let big = dir.path().join("big.secret");
    std::fs::write(&big, vec![b'x'; 65 * 1024]).unwrap();
    for (path, what) in [
        (Path::new("/dev/zero"), "is a device"),
        (fifo.as_path(), "is a FIFO"),
        (big.as_path(), "is 66560 bytes; at most 64 KiB are read"),
    ] {
        let started = Instant::now();
        let err = SystemSecrets.resolve(&SecretRef::File(path.to_owned())).unwrap_err();
        assert!(err.contains(what), "{path:?}: {err}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

#[test]
fn a_tenant_file_over_the_size_limit_is_one_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = tenant("big");
    text.push_str(&format!("# {}\n", "x".repeat(MAX_TENANT_FILE_BYTES as usize)));
    std::fs::write(dir.path().join("big.yaml"), text).unwrap();
    let found = problems(dir.path());
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("at most 1 MiB are read"), "{found:#?}");
}

#[test]
fn deeply_nested_brackets_are_refused_before_parsing_in_linear_time() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("deep.yaml"), format!("{}x: {}\n", tenant("deep"), "[".repeat(100_000))).unwrap();
    let started = Instant::now();
    let found = problems(dir.path());
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("deep.yaml:4:36: `[` and `{` nest deeper than 32"), "{found:#?}");
    // Brackets inside quotes and comments are not nesting.
    let quoted = format!(
        "{}name: \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\" # {{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\n",
        tenant("quoted")
    );
    std::fs::remove_file(dir.path().join("deep.yaml")).unwrap();
    std::fs::write(dir.path().join("quoted.yaml"), quoted).unwrap();
    assert_eq!(problems(dir.path()), Vec::<String>::new());
}

#[test]
fn thousands_of_unknown_keys_give_a_bounded_report_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let keys: String = (0..4_000).map(|i| format!("k{i}: 1\n")).collect();
    std::fs::write(dir.path().join("keys.yaml"), format!("{}{keys}", tenant("keys"))).unwrap();
    let started = Instant::now();
    let found = problems(dir.path());
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_eq!(found.len(), 101, "100 problems and one line for the rest");
    assert!(found[100].contains("more problems not shown (patchbay stops looking after 100)"), "{}", found[100]);
    // More nodes than any tenant file needs: one diagnostic, no per-key work.
    let keys: String = (0..12_000).map(|i| format!("k{i}: 1\n")).collect();
    std::fs::write(dir.path().join("keys.yaml"), format!("{}{keys}", tenant("keys"))).unwrap();
    let found = problems(dir.path());
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].contains("holds more than 10000 keys and values"), "{found:#?}");
}

/// Resolves every secret slowly, as a `${file:}` on a hung network mount would.
struct SlowSecrets {
    resolving: Arc<AtomicBool>,
}

impl SecretResolver for SlowSecrets {
    fn resolve(&self, _: &SecretRef) -> Result<SecretString, String> {
        self.resolving.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(2));
        Ok(SecretString::from("x".to_owned()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reload_never_holds_up_lookups_of_the_served_tenants() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("good.yaml"), tenant("good")).unwrap();
    let resolving = Arc::new(AtomicBool::new(false));
    let reg = registry(dir.path(), Arc::new(SlowSecrets { resolving: Arc::clone(&resolving) }));
    reg.load(true).unwrap();
    // A file whose secret takes 2 s to read.
    let slow = format!(
        "{}triggers:\n  dialer:\n    provider: vicidial\n    api_url: http://127.0.0.1:9/x\n    source: crm\n    \
         username: api\n    password: ${{file:/hung/mount}}\n",
        tenant("slow")
    );
    std::fs::write(dir.path().join("slow.yaml"), slow).unwrap();
    let reloading = reg.clone();
    let pass = tokio::task::spawn_blocking(move || reloading.reload_all());
    while !resolving.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    assert!(reg.get("good").is_some());
    assert!(reg.file_errors("good").is_empty());
    assert!(started.elapsed() < Duration::from_millis(200), "{:?}", started.elapsed());
    pass.await.unwrap();
}

#[test]
fn values_a_diagnostic_echoes_stay_on_one_line_and_cannot_drive_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "tenant: \"evil\\nproviders.d/other.yaml:1:1: fake\\u001b[2J\\r\\u202e\"\naccess:\n  tokens: [\"{TOKEN}\"]\n"
    );
    std::fs::write(dir.path().join("evil.yaml"), text).unwrap();
    let found = problems(dir.path());
    assert_eq!(found.len(), 1, "{found:#?}");
    let line = &found[0];
    assert!(!line.contains(['\n', '\r', '\u{1b}', '\u{202e}']), "{line:?}");
    assert!(line.contains("evil\\nproviders.d/other.yaml") && line.contains("\\u{1b}[2J"), "{line}");
}
