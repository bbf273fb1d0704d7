//! The driver side of the gRPC contract, for tests: a client over the provider's Unix socket.
//! TODO(server helper): implement.
