//! A [`tower`] layer for HTTP clients that makes every request carry a valid bearer token.
//!
//! PLACEHOLDER
#![cfg_attr(docsrs, feature(doc_auto_cfg))]
// Nothing that arrives over the network may panic; tests may.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod error;
mod future;
mod layer;
mod manager;
mod metrics;
pub mod provider;
mod replay;
mod secret;
mod service;
mod slot;
pub mod token;

pub use crate::error::{AuthCall, AuthError, BoxError, ErrorKind};
pub use crate::future::ResponseFuture;
pub use crate::layer::{AuthLayer, AuthLayerBuilder, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT};
pub use crate::manager::Backoff;
pub use crate::metrics::MetricsSnapshot;
pub use crate::provider::{AuthRequest, AuthResponse, Failure, Policy, Provider, RefreshTiming};
pub use crate::replay::{CloneBody, CloneRequest, NoReplay};
pub use crate::secret::Secret;
pub use crate::service::AuthService;
pub use crate::token::TokenSet;

pub use crate::provider::{oauth2, presets};
