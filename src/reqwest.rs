//! A reqwest-middleware middleware on a token handle.
