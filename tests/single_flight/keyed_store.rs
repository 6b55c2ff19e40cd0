//! Keyed sessions in a token store: each session under a key of its own (the layer's key and
//! the session's name), adopted by another layer on the same store for that session only; a
//! factory that gives two sessions one store key is refused before anything is sent.

use http::StatusCode;
use tower::Layer;
use tower_token_auth::provider::oauth2;
use tower_token_auth::store::{MemoryStore, TokenStore};
use tower_token_auth::{AuthLayer, AuthLayerBuilder, ErrorKind, KeyedAuthLayer};
use tower_token_auth_emulation::Emulation;

use crate::keyed::{audience, emulation, get, Tenant};
use crate::support::auth_error;
use crate::support::emulated::client;

/// The factory: a tenant's provider, its token for the tenant's audience.
fn factory(
    emulation: &Emulation,
) -> impl Fn(&Tenant) -> Result<AuthLayerBuilder, tower_token_auth::AuthError> + Send + Sync + 'static
{
    let (url, c) = (emulation.base_url(), emulation.config().clone());
    move |tenant: &Tenant| {
        let provider = oauth2::Builder::client_credentials(&url, &c.client_id, &*c.client_secret)
            .audience(&audience(tenant.0))
            .build()?;
        Ok(AuthLayer::builder(provider))
    }
}

fn stored(emulation: &Emulation, store: &MemoryStore) -> KeyedAuthLayer<Tenant> {
    KeyedAuthLayer::builder(factory(emulation))
        .store(store.clone(), "billing", |tenant| tenant.0.to_string())
        .build(client())
}

/// The access token stored under `key`.
async fn stored_token(store: &MemoryStore, key: &str) -> String {
    let session = TokenStore::load(store, key)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("nothing stored under {key}"));
    let json: serde_json::Value = serde_json::from_slice(&session.to_json(key)).unwrap();
    json["access_token"].as_str().unwrap().to_owned()
}

/// Three tenants through one keyed layer: three logins, three entries (`billing/1` ...), each
/// its own token. A second layer on the same store (another process) serves the same tenants
/// with no login at all, each adopting its own session: the resource, which checks each token's
/// audience, counts no violation.
#[tokio::test]
async fn each_session_is_stored_under_its_own_key_and_adopted_for_that_session_only() {
    let emulation = emulation().await;
    let base = format!("http://{}", emulation.addr());
    let store = MemoryStore::default();

    let first = stored(&emulation, &store);
    for tenant in 1..=3 {
        let status = get(first.layer(client()), base.clone(), tenant)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(emulation.stats().logins, 3);
    let mut tokens = Vec::new();
    for tenant in 1..=3 {
        let token = stored_token(&store, &format!("billing/{tenant}")).await;
        let handle = first.handle(&Tenant(tenant)).unwrap();
        assert_eq!(handle.token().await.unwrap().access_token().expose(), token);
        tokens.push(token);
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "three sessions, three tokens");

    let second = stored(&emulation, &store);
    for tenant in [3, 1, 2] {
        let status = get(second.layer(client()), base.clone(), tenant)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
        let metrics = second.handle(&Tenant(tenant)).unwrap().metrics();
        assert_eq!((metrics.logins, metrics.adoptions), (0, 1));
    }
    let s = emulation.stats();
    assert_eq!(
        (s.logins, s.resource_ok, s.resource_unauthorized),
        (3, 6, 0)
    );
    assert_eq!(emulation.violation_reasons(), Vec::new());
}

/// A factory that puts every session in the store under one key: the first session is served,
/// the second is refused with a configuration error naming the key, before any auth call, and
/// the first keeps working.
#[tokio::test]
async fn sessions_given_one_store_key_are_refused_before_anything_is_sent() {
    let emulation = emulation().await;
    let base = format!("http://{}", emulation.addr());
    let store = MemoryStore::default();
    let make = factory(&emulation);
    let shared = store.clone();
    let layer = KeyedAuthLayer::builder(move |tenant: &Tenant| {
        Ok(make(tenant)?.store(shared.clone(), "billing"))
    })
    .build(client());
    let svc = layer.layer(client());

    assert_eq!(
        get(svc.clone(), base.clone(), 1).await.unwrap(),
        StatusCode::OK
    );
    let err = get(svc.clone(), base.clone(), 2).await.unwrap_err();
    let err = auth_error(&err);
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("store key `billing`"), "{err}");
    assert_eq!(
        layer.handle(&Tenant(2)).unwrap_err().kind(),
        ErrorKind::Config
    );
    assert_eq!(get(svc, base.clone(), 1).await.unwrap(), StatusCode::OK);
    assert_eq!(layer.sessions(), (1, 0));
    let s = emulation.stats();
    assert_eq!(
        (s.logins, s.resource_ok, s.resource_unauthorized),
        (1, 2, 0)
    );
}
