//! `GrpcAuthLayer::keyed`: a keyed layer's sessions, one per tenant, over one real tonic
//! channel. The OAuth2 emulation issues each tenant's token for its own audience, and the guarded
//! health server checks each call's token at the resource of the tenant its `x-tenant` metadata
//! names (`/resource/tenant-N`), which refuses, and counts as a violation, a token issued for
//! another tenant. The key comes from the call's extensions, or from that metadata through the
//! layer's key function.

use super::*;

use tower_token_auth::provider::oauth2;
use tower_token_auth::{AuthError, ErrorKind, KeyedAuthLayer};
use tower_token_auth_emulation::OAuthExtensions;

/// The request extension naming a call's session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Tenant(u32);

fn audience(tenant: u32) -> String {
    format!("tenant-{tenant}")
}

/// Where a call's key comes from.
#[derive(Clone, Copy, Debug)]
enum KeySource {
    /// A `Tenant` in the call's extensions (tonic's `Request::extensions_mut`).
    Extension,
    /// The layer's key function, reading the call's `x-tenant` metadata.
    Metadata,
}

type Health = HealthClient<GrpcAuthService<Channel, Tenant>>;

/// The factory's tenant without credentials.
const NO_CREDENTIALS: u32 = 13;

struct Tenants {
    emulation: Emulation,
    reporter: HealthReporter,
    checker: Checker,
    log: Arc<Mutex<Vec<Seen>>>,
    layer: KeyedAuthLayer<Tenant>,
    health: Health,
    source: KeySource,
}

impl Tenants {
    async fn start(source: KeySource) -> Self {
        let config = Config {
            extensions: OAuthExtensions {
                resource_indicators: true,
                audience_per_path: true,
                ..OAuthExtensions::default()
            },
            ..Config::default()
        };
        let emulation = Emulation::start(Api::OAuth2, config)
            .await
            .expect("emulation starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let checker = Checker::new(&emulation, true, &log);
        let (addr, reporter) = serve(checker.clone()).await;

        let (url, c) = (emulation.base_url(), emulation.config().clone());
        let builder = KeyedAuthLayer::builder(move |tenant: &Tenant| {
            if tenant.0 == NO_CREDENTIALS {
                return Err(AuthError::config("no credentials for tenant 13"));
            }
            let provider =
                oauth2::Builder::client_credentials(&url, &c.client_id, &*c.client_secret)
                    .audience(&audience(tenant.0))
                    .build()?;
            Ok(AuthLayer::builder(provider))
        });
        let builder = match source {
            KeySource::Extension => builder,
            KeySource::Metadata => builder.key_from(|_, headers| {
                let tenant = headers.get("x-tenant")?.to_str().ok()?;
                tenant.strip_prefix("tenant-")?.parse().ok().map(Tenant)
            }),
        };
        let layer = builder.build(emulated::client());
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("channel URI")
            .connect()
            .await
            .expect("channel connects");
        let health = HealthClient::new(
            ServiceBuilder::new()
                .layer(GrpcAuthLayer::keyed(&layer))
                .service(channel),
        );
        Tenants {
            emulation,
            reporter,
            checker,
            log,
            layer,
            health,
            source,
        }
    }

    /// A request for `tenant`'s session: its metadata names the tenant (for the server's check,
    /// and for the key function), and its extensions carry the key when that is where the key
    /// comes from.
    fn request(&self, tenant: u32) -> tonic::Request<HealthCheckRequest> {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        let value = audience(tenant).parse().expect("metadata value");
        request.metadata_mut().insert("x-tenant", value);
        if let KeySource::Extension = self.source {
            request.extensions_mut().insert(Tenant(tenant));
        }
        request
    }

    async fn check(&self, tenant: u32) -> Result<ServingStatus, Status> {
        let reply = self.health.clone().check(self.request(tenant)).await?;
        Ok(reply.into_inner().status())
    }

    /// The header value of `tenant`'s current token, and its generation.
    /// [`Tenants::start`], then a call for each of three tenants: the tenants, and the token
    /// header each session logged in for; the server's log of those calls cleared.
    async fn with_a_token_each(source: KeySource) -> (Self, Vec<HeaderValue>) {
        let tenants = Self::start(source).await;
        for tenant in 0..3 {
            assert_eq!(tenants.check(tenant).await.unwrap(), ServingStatus::Serving);
        }
        let tokens = (0..3).map(|tenant| tenants.current(tenant).0).collect();
        tenants.seen();
        (tenants, tokens)
    }

    fn current(&self, tenant: u32) -> (HeaderValue, u64) {
        let handle = self.layer.handle(&Tenant(tenant)).expect("the session");
        let token = handle.current().expect("a valid token");
        (token.header_value().clone(), token.generation())
    }

    /// `tenant`'s session's counters.
    fn metrics(&self, tenant: u32) -> tower_token_auth::MetricsSnapshot {
        let handle = self.layer.handle(&Tenant(tenant)).expect("the session");
        handle.metrics()
    }

    /// The token checks the server made since the last call, taken out of the log.
    fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// The server holds `token` dead from now on, whatever the emulation says.
    fn kill(&self, token: &HeaderValue) {
        self.checker.killed.lock().unwrap().insert(token.clone());
    }

    /// Logins and refreshes at the emulation, and no violation: no token went to another
    /// tenant's resource.
    fn assert_auth_calls(&self, logins: u64, refreshes: u64) {
        let stats = self.emulation.stats();
        assert_eq!(
            (stats.logins, stats.refreshes),
            (logins, refreshes),
            "{stats:?}"
        );
        assert_eq!(self.emulation.violation_reasons(), Vec::new());
        assert_eq!(stats.resource_unauthorized, 0, "{stats:?}");
    }
}

/// `(path, tenant, token, live)` of each check, for comparison.
fn checks(seen: &[Seen]) -> Vec<(&str, Option<&str>, Option<&HeaderValue>, bool)> {
    seen.iter()
        .map(|s| {
            (
                s.path.as_str(),
                s.tenant.as_deref(),
                s.token.as_ref(),
                s.live,
            )
        })
        .collect()
}

/// 4 tenants × 8 calls, all made at once over one channel, the key from the extensions and
/// then from the metadata: one login per session, 4 distinct tokens, and every one of the 32
/// calls carried its own tenant's token (checked at its tenant's resource: 0 violations, 0
/// refusals).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_calling_at_once_log_in_once_each_and_each_call_carries_its_own_token() {
    const TENANTS: u32 = 4;
    const CALLS: u32 = 8;
    for source in [KeySource::Extension, KeySource::Metadata] {
        let tenants = Arc::new(Tenants::start(source).await);
        let start = Arc::new(Barrier::new((TENANTS * CALLS) as usize));
        let calls: Vec<_> = (0..TENANTS)
            .flat_map(|tenant| (0..CALLS).map(move |_| tenant))
            .map(|tenant| {
                let (tenants, start) = (Arc::clone(&tenants), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    tenants.check(tenant).await
                })
            })
            .collect();
        for call in calls {
            assert_eq!(
                call.await.unwrap().unwrap(),
                ServingStatus::Serving,
                "{source:?}"
            );
        }

        tenants.assert_auth_calls(u64::from(TENANTS), 0);
        assert_eq!(
            tenants.layer.sessions(),
            (TENANTS as usize, 0),
            "{source:?}"
        );
        let seen = tenants.seen();
        assert_eq!(seen.len(), (TENANTS * CALLS) as usize, "{source:?}");
        let mut tokens = HashSet::new();
        for tenant in 0..TENANTS {
            let (token, generation) = tenants.current(tenant);
            assert_eq!(generation, 1, "{source:?}");
            let name = audience(tenant);
            let own: Vec<_> = seen
                .iter()
                .filter(|s| s.tenant.as_deref() == Some(name.as_str()))
                .collect();
            assert_eq!(own.len(), CALLS as usize, "{source:?} {name}");
            assert!(
                own.iter()
                    .all(|s| s.live && s.path == CHECK && s.token.as_ref() == Some(&token)),
                "{source:?}: every call of {name} carried its session's token: {own:?}"
            );
            let m = tenants.metrics(tenant);
            assert_eq!(
                (m.logins, m.refreshes, m.replays, m.auth_failures),
                (1, 0, 0, 0),
                "{source:?} {name}"
            );
            tokens.insert(token);
        }
        assert_eq!(
            tokens.len(),
            TENANTS as usize,
            "{source:?}: a token per session"
        );

        let debug = format!("{:?}", tenants.health);
        for token in &tokens {
            let token = token.to_str().unwrap().trim_start_matches("Bearer ");
            assert!(!debug.contains(token), "no token in Debug output: {debug}");
        }
    }
}

/// Three tenants with a token each; tenant 1's `Watch` stream ends `UNAUTHENTICATED` in its
/// trailers (the server killed its token). Only tenant 1's session lost its token: its next
/// call carries a new one after one more auth call, and tenants 0 and 2 keep theirs (generation
/// 1, no auth call); nothing is replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ending_unauthenticated_invalidates_only_its_own_sessions_token() {
    for source in [KeySource::Extension, KeySource::Metadata] {
        let (tenants, before) = Tenants::with_a_token_each(source).await;
        tenants.assert_auth_calls(3, 0);

        let mut stream = tenants
            .health
            .clone()
            .watch(tenants.request(1))
            .await
            .unwrap()
            .into_inner();
        let message = stream.message().await.unwrap().expect("the current status");
        assert_eq!(message.status(), ServingStatus::Serving);

        // The server kills tenant 1's token: its stream ends at the next message.
        tenants.kill(&before[1]);
        tenants
            .reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        let error = stream.message().await.unwrap_err();
        assert_eq!(error.code(), Code::Unauthenticated, "{source:?} {error:?}");
        let t1 = Some(&before[1]);
        assert_eq!(
            checks(&tenants.seen()),
            [
                (WATCH, Some("tenant-1"), t1, true),
                (WATCH, Some("tenant-1"), t1, true),
                (WATCH, Some("tenant-1"), t1, false),
            ],
            "{source:?}: checked at the call, then before each message; no replay"
        );

        for tenant in 0..3 {
            assert_eq!(
                tenants.check(tenant).await.unwrap(),
                ServingStatus::NotServing
            );
        }
        let after: Vec<_> = (0..3).map(|tenant| tenants.current(tenant)).collect();
        assert_eq!(
            [after[0].1, after[1].1, after[2].1],
            [1, 2, 1],
            "{source:?}: a new token for tenant 1 only"
        );
        assert_eq!((&after[0].0, &after[2].0), (&before[0], &before[2]));
        assert_ne!(after[1].0, before[1]);
        assert_eq!(
            checks(&tenants.seen()),
            [
                (CHECK, Some("tenant-0"), Some(&before[0]), true),
                (CHECK, Some("tenant-1"), Some(&after[1].0), true),
                (CHECK, Some("tenant-2"), Some(&before[2]), true),
            ],
            "{source:?}"
        );
        // Tenant 1's session logs in again (no refresh token under client credentials).
        tenants.assert_auth_calls(4, 0);
        let logins: Vec<_> = (0..3).map(|t| tenants.metrics(t).logins).collect();
        assert_eq!(logins, [1, 2, 1], "{source:?}");
        let replays: Vec<_> = (0..3).map(|t| tenants.metrics(t).replays).collect();
        assert_eq!(replays, [0, 0, 0], "{source:?}");
    }
}

/// Three tenants with a token each; the server kills the tokens of tenants 0 and 2. One unary
/// call per tenant: tenants 0 and 2 are refused (trailers-only `UNAUTHENTICATED`) and replayed
/// once each with their own session's next token; tenant 1's goes through with its token. Two
/// more auth calls, one per refused session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_unary_call_is_replayed_with_its_own_sessions_next_token() {
    for source in [KeySource::Extension, KeySource::Metadata] {
        let (tenants, before) = Tenants::with_a_token_each(source).await;
        tenants.kill(&before[0]);
        tenants.kill(&before[2]);

        for tenant in 0..3 {
            assert_eq!(tenants.check(tenant).await.unwrap(), ServingStatus::Serving);
        }
        let after: Vec<_> = (0..3).map(|tenant| tenants.current(tenant)).collect();
        assert_eq!(
            [after[0].1, after[1].1, after[2].1],
            [2, 1, 2],
            "{source:?}"
        );
        assert_eq!(after[1].0, before[1]);
        assert_eq!(
            checks(&tenants.seen()),
            [
                (CHECK, Some("tenant-0"), Some(&before[0]), false),
                (CHECK, Some("tenant-0"), Some(&after[0].0), true),
                (CHECK, Some("tenant-1"), Some(&before[1]), true),
                (CHECK, Some("tenant-2"), Some(&before[2]), false),
                (CHECK, Some("tenant-2"), Some(&after[2].0), true),
            ],
            "{source:?}: each refused call replayed once, with its own session's token"
        );
        tenants.assert_auth_calls(5, 0);
        let replays: Vec<_> = (0..3).map(|t| tenants.metrics(t).replays).collect();
        assert_eq!(replays, [1, 0, 1], "{source:?}");
        let logins: Vec<_> = (0..3).map(|t| tenants.metrics(t).logins).collect();
        assert_eq!(logins, [2, 1, 2], "{source:?}");
    }
}

/// The `AuthError` a call failed with, through tonic's `Status` (`Code::Unknown`, the error as
/// its source).
fn auth_error(status: &Status) -> &AuthError {
    assert_eq!(status.code(), Code::Unknown, "{status:?}");
    std::error::Error::source(status)
        .and_then(|source| source.downcast_ref::<AuthError>())
        .unwrap_or_else(|| panic!("not an AuthError: {status:?}"))
}

/// A call naming no session (no key in its extensions, or no `x-tenant` metadata for the key
/// function), and a call for the tenant whose factory fails: each fails with a `Config` error
/// and is not sent (the server sees no call, the emulation no auth call, no session is built).
/// The layer then serves a tenant it can: one session, one login, one call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_naming_no_session_or_one_the_factory_refuses_fails_with_a_config_error_unsent() {
    for source in [KeySource::Extension, KeySource::Metadata] {
        let tenants = Tenants::start(source).await;
        let mut nameless = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        if let KeySource::Extension = source {
            // The metadata names a tenant, but the key is the extension's.
            nameless
                .metadata_mut()
                .insert("x-tenant", "tenant-1".parse().unwrap());
        }
        let status = tenants.health.clone().check(nameless).await.unwrap_err();
        assert_eq!(auth_error(&status).kind(), ErrorKind::Config, "{source:?}");

        let status = tenants.check(NO_CREDENTIALS).await.unwrap_err();
        let error = auth_error(&status);
        assert_eq!(error.kind(), ErrorKind::Config, "{source:?}");
        assert!(error.to_string().contains("tenant 13"), "{error}");

        assert_eq!(tenants.seen().len(), 0, "{source:?}: nothing sent");
        assert_eq!(tenants.layer.sessions(), (0, 0), "{source:?}");
        tenants.assert_auth_calls(0, 0);

        assert_eq!(tenants.check(1).await.unwrap(), ServingStatus::Serving);
        let (token, _) = tenants.current(1);
        assert_eq!(
            checks(&tenants.seen()),
            [(CHECK, Some("tenant-1"), Some(&token), true)],
            "{source:?}"
        );
        assert_eq!(tenants.layer.sessions(), (1, 0), "{source:?}");
        tenants.assert_auth_calls(1, 0);
    }
}
