//! The generated gRPC types. They stop at each service's `grpc.rs`: domain code uses domain types.

#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("patchbay.v1");
}

/// Encoded descriptors of `proto/`, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("patchbay_descriptor");
