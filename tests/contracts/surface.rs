//! The public surface is a decision: `tests/contracts/surface.txt` lists every nameable item and public
//! function (made by `scripts/surface`, which CI runs with `--check` to keep the file true), and
//! this test bounds its size.

/// The ceilings today. What the layer had before modern client authentication takes 39 items and
/// 119 functions (the goal was at most 40 and 120); client assertions, the `jose` keys,
/// revocation and discovery add 5 items and 27 functions (`SigningKey`, `DpopKey`, `Algorithm`,
/// `ClientAssertion`, `AssertionProvider`; `TokenHandle::revoke`, four `Provider` methods, `oauth2::Builder::revocation_url`, `resource`, `audience`, `discover` and `token_exchange`).
/// DPoP on requests adds no item and no function (a `TokenPolicy` field). Tokens only where
/// they belong add 1 item and 2 functions (`provider::Origins`, `Origins::new`,
/// `Origins::refuse_others`; the list is a `TokenPolicy` field). Spec files with the OAuth2
/// keys add one function, `ProviderSpec::issuer` (a spec pointed at another identity provider,
/// as `ProviderSpec::base_url` points one at another server). Keyed sessions add 3 items
/// and 8 functions (`KeyedAuthLayer`, its builder and service; `builder`, `handle`, `sessions`,
/// `without_replay`, and the builder's `key_from`, `max_sessions`, `idle_timeout`, `build`:
/// every per-session setting is the `AuthLayerBuilder` the factory returns), and the reqwest
/// middleware on them one (`AuthMiddleware::keyed`). Metrics through
/// the `metrics` facade add one function, `AuthLayerBuilder::metrics_name`: a process with
/// several layers (one per API) must tell their metrics and spans apart, and a name taken from
/// the provider would leave custom providers unnamed; everything else (the metrics, the span)
/// is reported, not called. Labelling keyed sessions in the metrics adds one function,
/// `KeyedAuthLayerBuilder::label_sessions`: a session's label must be the user's decision (each
/// value is a time series, and only the user knows whether the keys are few and none a
/// secret), and the key is the keyed layer's, out of reach of the `AuthLayerBuilder` its
/// factory returns. The gRPC adapter on keyed sessions adds one function and no item,
/// `GrpcAuthLayer::keyed`, as the reqwest middleware's `AuthMiddleware::keyed` did: the layer
/// and its service take the key type as a parameter defaulting to `()` (one session), so that
/// both share the one response future and body. Keyed sessions in a token store add one
/// function, `KeyedAuthLayerBuilder::store`: each session's store key must be the layer's key
/// plus the session's, which only the keyed layer can make (the factory's builder does not
/// see the layer's key, and a constant key there would hand one session's token to another).
/// Growth is a decision, made in the commit that raises these.
const MAX_ITEMS: usize = 48;
const MAX_FNS: usize = 162;

#[test]
fn the_public_surface_stays_within_its_bounds() {
    let listing = include_str!("surface.txt");
    let items = listing.lines().filter(|l| l.starts_with("item ")).count();
    let fns = listing.lines().filter(|l| l.starts_with("fn ")).count();
    let why =
        "growth of the public surface is a decision: update tests/contracts/surface.txt with \
               `scripts/surface > tests/contracts/surface.txt` and justify it in the commit";
    assert!(
        items <= MAX_ITEMS,
        "{items} public items, over {MAX_ITEMS}: {why}"
    );
    assert!(
        fns <= MAX_FNS,
        "{fns} public functions, over {MAX_FNS}: {why}"
    );
    assert!(
        items > 0 && fns > 0,
        "tests/contracts/surface.txt lists nothing"
    );
}
