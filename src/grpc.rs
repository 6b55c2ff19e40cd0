//! gRPC over tonic channels.
