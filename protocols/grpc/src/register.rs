//! The one registration of `grpc_user`.

use crate::protocol::GrpcProtocol;

load_density_core::register_user! {
    name: "grpc_user",
    description: "gRPC client for any service, described by .proto files, a descriptor set or server reflection: unary and streaming calls with JSON payloads, one HTTP/2 connection per user",
    protocol: GrpcProtocol,
}
