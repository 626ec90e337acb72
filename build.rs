//! Generates the gRPC types from `proto/` and a descriptor set for server reflection.
//! protoc comes from the `protoc-bin-vendored` crate, so a fresh machine needs no system package.

use std::{env, error::Error, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC from the environment.
    unsafe { env::set_var("PROTOC", &protoc) };

    let mut protos: Vec<PathBuf> =
        fs::read_dir("proto/patchbay/v1")?.map(|entry| entry.map(|e| e.path())).collect::<Result<_, _>>()?;
    protos.retain(|p| p.extension().is_some_and(|ext| ext == "proto"));
    protos.sort();
    // tonic-prost-build emits no rerun-if-changed of its own.
    println!("cargo:rerun-if-changed=proto/patchbay/v1");
    // sqlx::migrate! embeds migrations/ at compile time.
    println!("cargo:rerun-if-changed=migrations");
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("patchbay_descriptor.bin"))
        // Deterministic encoding of map fields: the idempotency store hashes encoded requests.
        .btree_map(".")
        .compile_protos(&protos, &["proto".into()])?;

    // google.rpc's error details, as reflection serves them: only their descriptors (tonic-types
    // has the Rust types), under the canonical file names `google/rpc/*.proto`.
    println!("cargo:rerun-if-changed=proto/google/rpc");
    let status = std::process::Command::new(&protoc)
        .arg("--include_imports")
        .arg(format!("--descriptor_set_out={}", out_dir.join("google_rpc_descriptor.bin").display()))
        .arg("-Iproto")
        .arg(format!("-I{}", protoc_bin_vendored::include_path()?.display()))
        .args(["proto/google/rpc/status.proto", "proto/google/rpc/error_details.proto"])
        .status()?;
    if !status.success() {
        return Err(format!("protoc failed on proto/google/rpc ({status})").into());
    }
    Ok(())
}
