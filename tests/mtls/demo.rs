//! The demo's external mode with `--client-auth tls_client_auth`: filled in below.
