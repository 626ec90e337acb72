//! The generated gRPC types. They stop at each service's `grpc.rs`: domain code uses domain types.

#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("patchbay.v1");
}

/// Encoded descriptors of `proto/patchbay` and the well-known types it imports, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("patchbay_descriptor");

/// Encoded descriptors of google.rpc's `status.proto` and `error_details.proto` (the error
/// details patchbay sends), under their canonical names, for server reflection.
pub const GOOGLE_RPC_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("google_rpc_descriptor");
