//! Provider specs, the API presets, the response parsers and token types.

#[path = "../support/mod.rs"]
mod support;

mod discovery;
mod exchange;
mod mtls;
mod oauth2_keys;
mod parsers;
mod presets;
mod spec;
mod token_type;
