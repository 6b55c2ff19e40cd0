//! One layer, many sessions: [`KeyedAuthLayer`].

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{HeaderMap, Request, Response, Uri};
use tower_layer::Layer;
use tower_service::Service;

use crate::clock::{Clock, Reading};
use crate::error::{AuthError, BoxError};
use crate::future::ResponseFuture;
use crate::handle::TokenHandle;
use crate::layer::{AuthLayer, AuthLayerBuilder};
use crate::manager::{AuthTransport, Manager};
use crate::replay::{CloneBody, CloneRequest, NoReplay};
use crate::service::Step;
use crate::store::{Stores, TokenStore};

/// The user's factory: the layer settings for a key.
type Factory<K> = dyn Fn(&K) -> Result<AuthLayerBuilder, AuthError> + Send + Sync;
/// The factory with the keyed layer's transport: the layer for a key.
type Build<K> = dyn Fn(&K) -> Result<AuthLayer, AuthError> + Send + Sync;
/// A function of the request naming its session.
type KeyFn<K> = dyn Fn(&Uri, &HeaderMap) -> Option<K> + Send + Sync;
/// The user's function naming a session in its store key.
type NameFn<K> = dyn Fn(&K) -> String + Send + Sync;
/// The store every session is kept in, the layer's key, and the session's name in it.
type SessionStore<K> = (Arc<dyn Stores>, String, Box<NameFn<K>>);
/// The user's function labelling a session's metrics by its key.
#[cfg(feature = "metrics")]
type LabelFn<K> = dyn Fn(&K) -> String + Send + Sync;

/// A [`Layer`] serving many sessions, one per key (a tenant, a user, a scope or resource), each
/// with its own slot, single flight, backoff, DPoP nonces and store key.
///
/// A request names its session by a key: a request extension of the key's type (the default),
/// or what a function of the request's URI and headers returns
/// ([`KeyedAuthLayerBuilder::key_from`]). The first request (or
/// [`handle`](KeyedAuthLayer::handle)) for a key builds its session with the factory, which
/// returns the [`AuthLayerBuilder`] for that key: its provider with the key's credentials,
/// scope, resource or subject token, and any setting the layer has (policy, store and store
/// key, timeouts). Sessions are kept in a copy-on-write map: a request for a known key reads it
/// without a lock (one atomic load and a hash lookup), and only a new key takes the lock that
/// builds and inserts sessions. At most [`max_sessions`](KeyedAuthLayerBuilder::max_sessions)
/// live, the least recently used dropped first, and a session unused for
/// [`idle_timeout`](KeyedAuthLayerBuilder::idle_timeout) is dropped (by a request of another
/// session, at most half a timeout later, or by the next insertion).
/// Dropping a session drops only the layer's reference: its auth call in flight completes, and
/// the requests waiting on it get its token.
///
/// ```
/// # fn build(client: tower::util::BoxCloneSyncService<http::Request<http_body_util::Full<bytes::Bytes>>, http::Response<http_body_util::Full<bytes::Bytes>>, tower::BoxError>) {
/// use std::time::Duration;
/// use tower_token_auth::provider::oauth2;
/// use tower_token_auth::{AuthLayer, KeyedAuthLayer};
///
/// /// The request extension naming the tenant whose token a request carries.
/// #[derive(Clone, Debug, PartialEq, Eq, Hash)]
/// struct Tenant(String);
///
/// let layer = KeyedAuthLayer::builder(|tenant: &Tenant| {
///     let provider = oauth2::Builder::client_credentials_grant("https://idp.example.com/token")
///         .audience(&format!("https://api.example.com/{}", tenant.0))
///         .build()?;
///     Ok(AuthLayer::builder(provider))
/// })
/// .max_sessions(1_000)
/// .idle_timeout(Duration::from_secs(15 * 60))
/// .build(client);
/// // let mut request = http::Request::get("https://api.example.com/acme/orders").body(...)?;
/// // request.extensions_mut().insert(Tenant("acme".into()));
/// # let _ = layer;
/// # }
/// ```
pub struct KeyedAuthLayer<K, R = CloneBody> {
    sessions: Arc<Sessions<K>>,
    replay: R,
}

/// Builds a [`KeyedAuthLayer`]; start with [`KeyedAuthLayer::builder`].
pub struct KeyedAuthLayerBuilder<K> {
    factory: Box<Factory<K>>,
    key_fn: Option<Box<KeyFn<K>>>,
    max_sessions: usize,
    idle_timeout: Duration,
    store: Option<SessionStore<K>>,
    /// The `session` label of each session's metrics, when the user opted in.
    #[cfg(feature = "metrics")]
    label: Option<Box<LabelFn<K>>>,
}

/// The service a [`KeyedAuthLayer`] makes: each request goes out with its session's token, by
/// the same rules as [`AuthService`](crate::AuthService)'s.
///
/// A request that names no session fails with [`ErrorKind::Config`](crate::ErrorKind::Config);
/// so does one whose session the factory could not build (with the factory's error).
pub struct KeyedAuthService<S, K, R = CloneBody> {
    inner: S,
    sessions: Arc<Sessions<K>>,
    replay: R,
}

/// The live sessions by key. foldhash's quality variant: a request's lookup hashes its key, and
/// SipHash (std's default) cost more than the rest of the lookup; keys may come from request
/// headers, so the variant with its (minimal) resistance to chosen collisions.
type Map<K> = HashMap<K, Arc<Session>, foldhash::quality::RandomState>;

/// The sessions of a keyed layer.
struct Sessions<K> {
    map: ArcSwap<Map<K>>,
    build: Box<Build<K>>,
    key_fn: Option<Box<KeyFn<K>>>,
    /// Held while a session is built and inserted: one build per new key.
    inserting: Mutex<()>,
    max: usize,
    idle: Duration,
    clock: Clock,
    evicted: AtomicU64,
    /// When a request next looks for idle sessions to drop: nanoseconds on the layer's clock.
    next_sweep: AtomicU64,
}

struct Session {
    manager: Arc<Manager>,
    /// When a request last used the session: nanoseconds on the layer's clock, written at
    /// most once a millisecond.
    last_used: AtomicU64,
}

/// Default bound on live sessions.
const DEFAULT_MAX_SESSIONS: usize = 10_000;
/// Default idle time after which a session is dropped.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// How stale a session's last use may be before a request writes it again.
const TOUCH_EVERY_NANOS: u64 = 1_000_000;

impl<K> KeyedAuthLayer<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    /// A keyed layer whose session for a key is the layer `factory` builds for it. The factory
    /// runs once per key (again only after the session was dropped); an error from it fails the
    /// requests for that key, and it runs again for the next one.
    pub fn builder(
        factory: impl Fn(&K) -> Result<AuthLayerBuilder, AuthError> + Send + Sync + 'static,
    ) -> KeyedAuthLayerBuilder<K> {
        KeyedAuthLayerBuilder {
            factory: Box::new(factory),
            key_fn: None,
            max_sessions: DEFAULT_MAX_SESSIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            store: None,
            #[cfg(feature = "metrics")]
            label: None,
        }
    }
}

impl<K> KeyedAuthLayerBuilder<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    /// Names a request's session with `f` of its URI and headers (a tenant header, the host)
    /// instead of a request extension of type `K`; `None` names none.
    pub fn key_from(
        mut self,
        f: impl Fn(&Uri, &HeaderMap) -> Option<K> + Send + Sync + 'static,
    ) -> Self {
        self.key_fn = Some(Box::new(f));
        self
    }

    /// At most `n` sessions live (at least 1): a new key beyond them drops the least recently
    /// used. Default: 10,000.
    pub fn max_sessions(mut self, n: usize) -> Self {
        self.max_sessions = n.max(1);
        self
    }

    /// A session no request used for `idle` is dropped, with its token: the layer's requests
    /// look for idle sessions every half `idle` (one atomic load per request otherwise), and a
    /// new session's insertion always does. So a session is dropped between `idle` and
    /// `1.5 × idle` after its last use, when other sessions' requests keep coming, or at the
    /// next insertion. Default: one hour.
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Keeps every session in `store`, under `key` and the session's name, `name` of its key:
    /// `"{key}/{name}"` (`"billing/acme"`), so that each session has an entry of its own, shared
    /// with the processes that name it the same way (see [`store`](crate::store)). Replaces a
    /// store the factory's builder set.
    ///
    /// `name` must tell sessions apart: two keys of one name would share a stored session, and
    /// the layer refuses a session whose store key a live session has (a
    /// [`Config`](crate::ErrorKind::Config) error for its requests). It is written into the
    /// store as it is: never a secret.
    ///
    /// ```
    /// # fn build(client: tower::util::BoxCloneSyncService<http::Request<http_body_util::Full<bytes::Bytes>>, http::Response<http_body_util::Full<bytes::Bytes>>, tower::BoxError>) {
    /// use tower_token_auth::provider::oauth2;
    /// use tower_token_auth::store::FileStore;
    /// use tower_token_auth::{AuthLayer, KeyedAuthLayer};
    ///
    /// #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    /// struct Tenant(String);
    ///
    /// let layer = KeyedAuthLayer::builder(|tenant: &Tenant| {
    ///     let provider = oauth2::Builder::client_credentials_grant("https://idp.example.com/token")
    ///         .audience(&format!("https://api.example.com/{}", tenant.0))
    ///         .build()?;
    ///     Ok(AuthLayer::builder(provider))
    /// })
    /// .store(FileStore::new("/var/lib/my-service/tokens"), "billing", |tenant| tenant.0.clone())
    /// .build(client);
    /// # let _ = layer;
    /// # }
    /// ```
    pub fn store(
        mut self,
        store: impl TokenStore + 'static,
        key: impl Into<String>,
        name: impl Fn(&K) -> String + Send + Sync + 'static,
    ) -> Self {
        self.store = Some((Arc::new(store), key.into(), Box::new(name)));
        self
    }

    /// Labels each session's metrics (feature `metrics`) with `session`, the value `f` gives
    /// for its key, beside `provider`: every metric then has a series per session, so that the
    /// token gauges give each session's expiry and lifetime, and auth calls, waits and replays
    /// are counted per session. Default: off, and the sessions of one
    /// [`metrics_name`](crate::AuthLayerBuilder::metrics_name) report into one series (a gauge
    /// holds the token that landed last, whichever session's).
    ///
    /// Off by default because each label value is a time series of every metric, in the
    /// recorder and in whatever stores what it exports: a thousand tenants are a thousand
    /// series per metric. Label sessions when they are few, or let `f` fold keys into a few
    /// values (a tenant's tier or region; sessions giving one value share its series). The
    /// label is exported as it is: never a secret, a credential or anything made per request.
    /// A dropped session's series stay until the recorder forgets them (an exporter's idle
    /// timeout). See the [events catalogue](crate#metrics).
    ///
    /// ```
    /// # fn build(client: tower::util::BoxCloneSyncService<http::Request<http_body_util::Full<bytes::Bytes>>, http::Response<http_body_util::Full<bytes::Bytes>>, tower::BoxError>) {
    /// use tower_token_auth::provider::oauth2;
    /// use tower_token_auth::{AuthLayer, KeyedAuthLayer};
    ///
    /// /// A tenant's id: a few dozen of them, none a secret.
    /// #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    /// struct Tenant(u32);
    ///
    /// let layer = KeyedAuthLayer::builder(|tenant: &Tenant| {
    ///     let provider = oauth2::Builder::client_credentials_grant("https://idp.example.com/token")
    ///         .audience(&format!("https://api.example.com/tenant-{}", tenant.0))
    ///         .build()?;
    ///     Ok(AuthLayer::builder(provider).metrics_name("orders-api"))
    /// })
    /// // tower_token_auth_token_expiry_timestamp_seconds{provider="orders-api",session="tenant-7"}
    /// .label_sessions(|tenant| format!("tenant-{}", tenant.0))
    /// .build(client);
    /// # let _ = layer;
    /// # }
    /// ```
    #[cfg(feature = "metrics")]
    pub fn label_sessions(mut self, f: impl Fn(&K) -> String + Send + Sync + 'static) -> Self {
        self.label = Some(Box::new(f));
        self
    }

    /// Builds the layer; every session sends its auth calls through a clone of `transport`.
    pub fn build(self, transport: impl AuthTransport) -> KeyedAuthLayer<K> {
        let factory = self.factory;
        let store = self.store;
        #[cfg(feature = "metrics")]
        let label = self.label;
        let build = move |key: &K| {
            factory(key).map(|builder| {
                let builder = match &store {
                    Some((store, prefix, name)) => builder.store_shared(
                        Arc::clone(store),
                        Arc::from(format!("{prefix}/{}", name(key))),
                    ),
                    None => builder,
                };
                #[cfg(feature = "metrics")]
                let builder = match &label {
                    Some(label) => builder.session_label(Arc::from(label(key))),
                    None => builder,
                };
                builder.build(transport.clone())
            })
        };
        KeyedAuthLayer {
            sessions: Arc::new(Sessions {
                map: ArcSwap::from_pointee(Map::default()),
                build: Box::new(build),
                key_fn: self.key_fn,
                inserting: Mutex::new(()),
                max: self.max_sessions,
                idle: self.idle_timeout,
                clock: Clock::default(),
                evicted: AtomicU64::new(0),
                next_sweep: AtomicU64::new(0),
            }),
            replay: CloneBody,
        }
    }
}

impl<K, R> KeyedAuthLayer<K, R>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    /// Sends each request once, as [`AuthLayer::without_replay`] does.
    pub fn without_replay(self) -> KeyedAuthLayer<K, NoReplay> {
        KeyedAuthLayer {
            sessions: self.sessions,
            replay: NoReplay,
        }
    }

    /// The handle of `key`'s session, built if it is not live.
    pub fn handle(&self, key: &K) -> Result<TokenHandle, AuthError> {
        self.sessions
            .session(key)
            .map(|session| TokenHandle::new(Arc::clone(&session.manager)))
    }

    /// The handle of the session a request names: by the layer's key function of its URI and
    /// headers (`head`, made only then), else by the `K` in `extensions`.
    #[cfg(feature = "reqwest")]
    pub(crate) fn handle_for(
        &self,
        extensions: &http::Extensions,
        head: impl FnOnce() -> (Uri, HeaderMap),
    ) -> Result<TokenHandle, AuthError> {
        let key = match &self.sessions.key_fn {
            Some(key_fn) => {
                let (uri, headers) = head();
                key_fn(&uri, &headers)
            }
            None => extensions.get::<K>().cloned(),
        };
        self.handle(&key.ok_or_else(no_key)?)
    }

    /// The session `request` names (built if it is not live) and a reading of its clock, as
    /// [`KeyedAuthService::call`] finds them: for an adapter that steps the request itself
    /// (the gRPC service, whose channel watches each call's session). Fails as the service
    /// does: no key, or the factory's error.
    #[cfg(feature = "tonic")]
    pub(crate) fn session_of<B>(
        &self,
        request: &Request<B>,
    ) -> Result<(TokenHandle, Reading), AuthError> {
        let sessions = &*self.sessions;
        let map = sessions.map.load();
        let inserted;
        let session = match sessions.find(&map, request)? {
            Ok(session) => session,
            Err(key) => {
                inserted = sessions.insert(&key)?;
                &inserted
            }
        };
        let reading = session.manager.clock().read();
        sessions.used(session, reading);
        Ok((TokenHandle::new(Arc::clone(&session.manager)), reading))
    }

    /// How many sessions are live, and how many were dropped (least recently used, or idle).
    pub fn sessions(&self) -> (usize, u64) {
        (
            self.sessions.map.load().len(),
            self.sessions.evicted.load(Ordering::Relaxed),
        )
    }
}

impl<K> Sessions<K>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    fn now(&self) -> u64 {
        self.clock.moment().as_nanos()
    }

    /// A session's clock reading as this layer's moment: coarse ticks are one counter for
    /// every clock; any other reading is of its own clock, and this layer's is read instead.
    #[inline]
    fn moment_of(&self, reading: Reading) -> u64 {
        match reading {
            Reading::Ticks(_) => self.clock.moment_of(reading).as_nanos(),
            Reading::Moment(_) => self.now(),
        }
    }

    /// `request`'s session in `map` (`Ok`), or the key of the session to build for it (`Err`);
    /// a request that names no session is a [`Config`](crate::ErrorKind::Config) error.
    #[inline]
    fn find<'m, B>(
        &self,
        map: &'m Map<K>,
        request: &Request<B>,
    ) -> Result<Result<&'m Arc<Session>, K>, AuthError> {
        match &self.key_fn {
            None => {
                let key = request.extensions().get::<K>().ok_or_else(no_key)?;
                Ok(map.get(key).ok_or_else(|| key.clone()))
            }
            Some(key_fn) => {
                let key = key_fn(request.uri(), request.headers()).ok_or_else(no_key)?;
                Ok(map.get(&key).ok_or(key))
            }
        }
    }

    /// A request used `session` at `reading`: its recency, and the sweep for idle sessions when
    /// one is due.
    #[inline]
    fn used(&self, session: &Session, reading: Reading) {
        let now = self.moment_of(reading);
        session.touch(now);
        if now >= self.next_sweep.load(Ordering::Relaxed) {
            self.sweep(now);
        }
    }

    /// Drops the sessions idle past the idle timeout, and sets the next sweep half a timeout
    /// later; skipped while a session is being inserted (which drops them too).
    #[cold]
    #[inline(never)]
    fn sweep(&self, now: u64) {
        let Ok(_inserting) = self.inserting.try_lock() else {
            return;
        };
        let idle = self.idle_nanos();
        self.next_sweep
            .store(now.saturating_add(idle / 2), Ordering::Relaxed);
        let current = self.map.load_full();
        let (map, dropped) = self.without_idle(&current, now);
        if dropped > 0 {
            self.map.store(Arc::new(map));
            self.dropped(dropped);
        }
    }

    fn idle_nanos(&self) -> u64 {
        u64::try_from(self.idle.as_nanos()).unwrap_or(u64::MAX)
    }

    /// `current` without its sessions idle at `now`, and how many those were.
    fn without_idle(&self, current: &Map<K>, now: u64) -> (Map<K>, usize) {
        let idle = self.idle_nanos();
        let map: Map<K> = current
            .iter()
            .filter(|(_, s)| now.saturating_sub(s.last_used.load(Ordering::Relaxed)) < idle)
            .map(|(k, s)| (k.clone(), Arc::clone(s)))
            .collect();
        let dropped = current.len() - map.len();
        (map, dropped)
    }

    fn dropped(&self, dropped: usize) {
        self.evicted.fetch_add(dropped as u64, Ordering::Relaxed);
        tracing::debug!(
            dropped,
            "keyed sessions dropped (idle, or least recently used)"
        );
    }

    /// `key`'s session, built and inserted if it is not live.
    fn session(&self, key: &K) -> Result<Arc<Session>, AuthError> {
        if let Some(session) = self.map.load().get(key) {
            session.touch(self.now());
            return Ok(Arc::clone(session));
        }
        self.insert(key)
    }

    /// Builds `key`'s session and inserts it, dropping idle sessions and, beyond the bound, the
    /// least recently used.
    #[cold]
    fn insert(&self, key: &K) -> Result<Arc<Session>, AuthError> {
        let _inserting = self
            .inserting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.map.load_full();
        if let Some(session) = current.get(key) {
            return Ok(Arc::clone(session));
        }
        let layer = (self.build)(key)?;
        let manager = layer.manager();
        if let Some(stored) = manager.store_key() {
            if current
                .values()
                .any(|s| s.manager.store_key() == Some(stored))
            {
                return Err(AuthError::config(format!(
                    "the session's store key `{stored}` is another live session's: two sessions \
                     would share one stored session; give each session a key of its own \
                     (`KeyedAuthLayerBuilder::store` names them by key)"
                )));
            }
        }
        let now = self.now();
        let session = Arc::new(Session {
            manager,
            last_used: AtomicU64::new(now),
        });
        let (mut map, mut dropped) = self.without_idle(&current, now);
        while map.len() >= self.max {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(oldest) => drop(map.remove(&oldest)),
                None => break,
            }
            dropped += 1;
        }
        map.insert(key.clone(), Arc::clone(&session));
        self.map.store(Arc::new(map));
        if dropped > 0 {
            self.dropped(dropped);
        }
        Ok(session)
    }
}

impl Session {
    #[inline]
    fn touch(&self, now: u64) {
        if now.saturating_sub(self.last_used.load(Ordering::Relaxed)) >= TOUCH_EVERY_NANOS {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }
}

impl<S, K, R: Clone> Layer<S> for KeyedAuthLayer<K, R> {
    type Service = KeyedAuthService<S, K, R>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyedAuthService {
            inner,
            sessions: Arc::clone(&self.sessions),
            replay: self.replay.clone(),
        }
    }
}

impl<S, K, R, B, RB> Service<Request<B>> for KeyedAuthService<S, K, R>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Send + 'static,
    R: CloneRequest<B>,
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    type Response = Response<RB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, B, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline]
    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let sessions = &*self.sessions;
        let map = sessions.map.load();
        let session = match sessions.find(&map, &request) {
            Ok(Ok(session)) => session,
            Ok(Err(key)) => match sessions.insert(&key) {
                Ok(session) => return self.step(&session.manager, request),
                Err(error) => return ResponseFuture::refused(error),
            },
            Err(error) => return ResponseFuture::refused(error),
        };
        // One clock read for the session's recency and its token's freshness.
        let reading = session.manager.clock().read();
        sessions.used(session, reading);
        let step = Step {
            manager: &session.manager,
            inner: &mut self.inner,
            replay: &self.replay,
        };
        // NOTE: the request stays here and goes out from here, as in `AuthService::call`.
        match step.prepare(&mut request, reading) {
            Ok(sending) => ResponseFuture::sent(step.inner.call(request), sending),
            Err(token) => step.cold(request, token, reading),
        }
    }
}

impl<S, K, R> KeyedAuthService<S, K, R> {
    /// The request through `manager`'s session (a session just built).
    #[cold]
    fn step<B, RB>(
        &mut self,
        manager: &Arc<Manager>,
        request: Request<B>,
    ) -> ResponseFuture<S, B, R>
    where
        S: Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
        R: CloneRequest<B>,
    {
        let reading = manager.clock().read();
        Step {
            manager,
            inner: &mut self.inner,
            replay: &self.replay,
        }
        .call_at(request, reading)
    }
}

fn no_key() -> AuthError {
    AuthError::config("the request names no session: no session key in its extensions")
}

impl<K, R: Clone> Clone for KeyedAuthLayer<K, R> {
    fn clone(&self) -> Self {
        Self {
            sessions: Arc::clone(&self.sessions),
            replay: self.replay.clone(),
        }
    }
}

impl<S: Clone, K, R: Clone> Clone for KeyedAuthService<S, K, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            sessions: Arc::clone(&self.sessions),
            replay: self.replay.clone(),
        }
    }
}

impl<K, R: fmt::Debug> fmt::Debug for KeyedAuthLayer<K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedAuthLayer")
            .field("sessions", &self.sessions.map.load().len())
            .field("max_sessions", &self.sessions.max)
            .field("idle_timeout", &self.sessions.idle)
            .field("replay", &self.replay)
            .finish()
    }
}

impl<K> fmt::Debug for KeyedAuthLayerBuilder<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("KeyedAuthLayerBuilder");
        debug
            .field("max_sessions", &self.max_sessions)
            .field("idle_timeout", &self.idle_timeout)
            .field("key_from", &self.key_fn.is_some());
        #[cfg(feature = "metrics")]
        debug.field("label_sessions", &self.label.is_some());
        debug.finish_non_exhaustive()
    }
}

impl<S: fmt::Debug, K, R: fmt::Debug> fmt::Debug for KeyedAuthService<S, K, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedAuthService")
            .field("inner", &self.inner)
            .field("sessions", &self.sessions.map.load().len())
            .field("replay", &self.replay)
            .finish()
    }
}
