//! The emulations driven by a plain hyper-util client (never through the layer): each API's
//! endpoints and quirks, rotation and reuse, revocation, real-time expiry, faults, malformed input
//! and concurrent load.

mod jose_support;
mod support;

mod client_assertion;
mod dpop;
mod every_api;
mod faults;
mod injected_faults;
mod intergiro;
mod load;
mod malformed;
mod modern;
mod modern_malformed;
mod mtls;
mod oauth2;
mod oli;
mod resource;
mod simacan;
mod tradecloud;
mod union_service;
