//! Hot reload: file events on `providers.d/`, debounced, reload just the files they name.
//!
//! Editors save through temporary files and renames, and one save is often several events, so
//! events are collected until the directory has been quiet for the debounce period. An event that
//! does not name a tenant file directly (a Kubernetes ConfigMap swapping its `..data` link, an
//! overflowed event queue) triggers a full rescan instead.

use std::{
    collections::BTreeSet,
    ffi::OsString,
    path::{Path, PathBuf},
    time::Duration,
};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::Registry;
use super::read::is_tenant_file;

enum Change {
    /// File names in the directory.
    Files(Vec<OsString>),
    Rescan,
}

/// Watches the registry's directory until `stop` resolves. Returns once the watch is in place,
/// so that a test may write a file right after.
pub async fn spawn(
    registry: Registry,
    debounce: Duration,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> notify::Result<tokio::task::JoinHandle<()>> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
    let dir = registry.dir().to_path_buf();
    let canonical_dir = dir.canonicalize().unwrap_or_else(|_| dir.clone());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let change = match event {
            Ok(event) if matches!(event.kind, EventKind::Access(_)) => return,
            Ok(event) if event.need_rescan() => Change::Rescan,
            Ok(event) => {
                let direct = event.paths.iter().all(|p| names_tenant_file(p, &canonical_dir));
                if direct {
                    Change::Files(event.paths.iter().filter_map(|p| p.file_name().map(OsString::from)).collect())
                } else {
                    Change::Rescan
                }
            }
            Err(_) => Change::Rescan,
        };
        let _ = tx.send(change);
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;

    let dir = registry.dir().to_path_buf();
    Ok(tokio::spawn(async move {
        // Owned by the task: dropping it ends the watch.
        let _watcher = watcher;
        tokio::pin!(stop);
        loop {
            let first = tokio::select! {
                _ = &mut stop => return,
                change = rx.recv() => match change { Some(c) => c, None => return },
            };
            let mut paths = BTreeSet::new();
            let mut rescan = false;
            let mut absorb = |change: Change| match change {
                Change::Files(names) => paths.extend(names.into_iter().map(|n| dir.join(n))),
                Change::Rescan => rescan = true,
            };
            absorb(first);
            // Quiet period: keep collecting until no event arrives for `debounce`.
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    change = tokio::time::timeout(debounce, rx.recv()) => match change {
                        Ok(Some(c)) => absorb(c),
                        Ok(None) => return,
                        Err(_) => break,
                    },
                }
            }
            let registry = registry.clone();
            let paths: Vec<PathBuf> = paths.into_iter().collect();
            let result =
                tokio::task::spawn_blocking(
                    move || {
                        if rescan { registry.reload_all() } else { registry.reload_paths(&paths) }
                    },
                )
                .await;
            if let Err(err) = result {
                tracing::error!(%err, "registry reload panicked");
            }
        }
    }))
}

/// Event paths are canonical (symlinks resolved), hence the canonical directory.
fn names_tenant_file(path: &Path, dir: &Path) -> bool {
    path.parent().is_some_and(|p| p == dir) && is_tenant_file(path)
}
