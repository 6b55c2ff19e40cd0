//! A spec's OAuth2 keys: `issuer` (discovery), `client_auth` with its `client_key` or
//! `client_assertion_file` (or, for the mutual TLS methods, nothing: the auth transport's
//! certificate authenticates), `resource`, `audience` and `dpop`.
//!
//! They are read beside the calls, checked against them, and folded into them when the spec is
//! read: the secret methods and the targets become the form fields and HTTP Basic that the
//! calls then send like any other, so that they are filled, kept secret and scrubbed as every
//! placeholder is. What remains for the build is the issuer and the assertion: the OAuth2
//! provider's own [`ClientAssertion`], which makes a new assertion for every call.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IntoDeserializer, SeqAccess, Visitor};
use serde::Deserialize;

#[cfg(feature = "jose")]
use crate::jose::{Algorithm, SigningKey};
use crate::provider::generic::Discovered;
use crate::provider::oauth2::ClientAssertion;
use crate::provider::HttpProvider;

use super::build::Fill;
use super::call::{self, Basic, Body, Call, Url, MAX_FORM_FIELDS};
use super::template::{Name, Piece, Template, Var};
use super::SpecError;

/// How many `resource` or `audience` values a spec names at most.
pub(super) const MAX_TARGETS: usize = 100;

/// The OAuth2 keys as the document holds them, before they are checked against the calls.
pub(super) struct Keys {
    pub(super) issuer: Option<Issuer>,
    pub(super) client_auth: Option<ClientAuth>,
    pub(super) client_key: Option<KeySpec>,
    pub(super) client_assertion_file: Option<Template>,
    pub(super) resource: OneOrMany<Resource>,
    pub(super) audience: OneOrMany<Audience>,
    pub(super) dpop: Option<DpopSpec>,
}

/// What the OAuth2 keys leave for the build once folded into the calls.
#[derive(Clone, Debug, Default)]
pub(super) struct OAuth {
    /// Where the token endpoint is learned from, instead of the calls' URL.
    pub(super) issuer: Option<String>,
    /// How the client authenticates, for the credentials it needs.
    client_auth: Option<ClientAuth>,
    /// How the client's assertions are made, for the assertion methods.
    assertion: Option<Assertion>,
    /// The DPoP key tokens are bound to.
    #[cfg_attr(not(feature = "jose"), allow(dead_code))]
    dpop: Option<DpopSpec>,
}

/// `dpop = { alg = "ES256" }` (a key generated when the provider is built) or
/// `dpop = { alg = "ES256", pem_file = "…" }` (a PKCS#8 PEM file, for processes that share a
/// session to share the key): tokens bound to the key (RFC 9449).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "jose"), allow(dead_code))]
pub(super) struct DpopSpec {
    alg: AlgName,
    pem_file: Option<Template>,
}

/// `client_auth`: how the client authenticates at the token endpoint (RFC 6749 §2.3.1, RFC
/// 7523, OpenID Connect Core §9, RFC 8705 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
    ClientSecretJwt,
    PrivateKeyJwt,
    #[serde(rename = "tls_client_auth")]
    Tls,
    #[serde(rename = "self_signed_tls_client_auth")]
    SelfSignedTls,
}

impl ClientAuth {
    fn name(self) -> &'static str {
        match self {
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::ClientSecretPost => "client_secret_post",
            ClientAuth::ClientSecretJwt => "client_secret_jwt",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
            ClientAuth::Tls => "tls_client_auth",
            ClientAuth::SelfSignedTls => "self_signed_tls_client_auth",
        }
    }

    /// Whether the client authenticates by its TLS certificate (RFC 8705): the auth transport
    /// presents it, and the calls carry the `client_id` alone.
    fn is_mtls(self) -> bool {
        matches!(self, ClientAuth::Tls | ClientAuth::SelfSignedTls)
    }
}

/// `client_key = { pem_file = "…", alg = "ES256", kid = "…" }`: the key `private_key_jwt`
/// signs with.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "jose"), allow(dead_code))]
pub(super) struct KeySpec {
    /// The path of a PKCS#8 PEM file, read when the provider is built.
    pem_file: Template,
    alg: AlgName,
    kid: Option<String>,
}

#[cfg(feature = "jose")]
type Alg = Algorithm;
/// Without the `jose` feature no key is read: the name waits for the feature's error.
#[cfg(not(feature = "jose"))]
type Alg = String;

/// A signing algorithm's `alg` name.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "String")]
#[cfg_attr(not(feature = "jose"), allow(dead_code))]
struct AlgName(Alg);

impl TryFrom<String> for AlgName {
    type Error = String;

    #[cfg(feature = "jose")]
    fn try_from(name: String) -> Result<Self, String> {
        Algorithm::from_name(&name)
            .map(Self)
            .ok_or_else(|| "an unsupported algorithm: use ES256, RS256, PS256 or EdDSA".to_owned())
    }

    #[cfg(not(feature = "jose"))]
    fn try_from(name: String) -> Result<Self, String> {
        Ok(Self(name))
    }
}

/// How the assertions are made.
#[derive(Clone, Debug)]
enum Assertion {
    /// `client_secret_jwt`: HS256 keyed with `${client_secret}`.
    #[cfg(feature = "jose")]
    SecretJwt,
    /// `private_key_jwt` with a key file.
    #[cfg(feature = "jose")]
    Key {
        pem_file: Template,
        alg: Algorithm,
        kid: Option<String>,
    },
    /// `private_key_jwt` with an assertion made elsewhere, read from a file at every call.
    File(Template),
}

/// `issuer`: an absolute http(s) URL without query or fragment.
#[derive(Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Issuer(pub(super) String);

impl TryFrom<String> for Issuer {
    type Error = String;

    fn try_from(url: String) -> Result<Self, String> {
        checked_issuer(&url).map(|()| Self(url))
    }
}

/// Checks an issuer: an absolute http(s) URL without placeholders, query or fragment (RFC 8414
/// §2).
fn checked_issuer(url: &str) -> Result<(), String> {
    if url.contains("${") {
        return Err("an issuer takes no placeholders".to_owned());
    }
    call::absolute(url)?;
    if url.contains(['?', '#']) {
        return Err("an issuer takes no query or fragment".to_owned());
    }
    Ok(())
}

/// A `resource` (RFC 8707): an absolute URI without a fragment.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Resource(String);

impl TryFrom<String> for Resource {
    type Error = String;

    fn try_from(uri: String) -> Result<Self, String> {
        let scheme = uri.split_once(':').map_or("", |(scheme, _)| scheme);
        let absolute = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !absolute || uri.contains(['#', ' ']) || uri.contains("${") {
            return Err(
                "a resource is an absolute URI without fragment or placeholders (RFC 8707)"
                    .to_owned(),
            );
        }
        Ok(Self(uri))
    }
}

/// An `audience`: any text but an empty one, without placeholders.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "String")]
pub(super) struct Audience(String);

impl TryFrom<String> for Audience {
    type Error = String;

    fn try_from(audience: String) -> Result<Self, String> {
        if audience.is_empty() || audience.contains("${") {
            return Err("an audience is text, not empty and without placeholders".to_owned());
        }
        Ok(Self(audience))
    }
}

/// A string or an array of strings, each a `T`; at most [`MAX_TARGETS`].
#[derive(Clone, Debug)]
pub(super) struct OneOrMany<T>(Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                T::deserialize(value.into_deserializer()).map(|one| OneOrMany(vec![one]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut many = Vec::new();
                while let Some(one) = seq.next_element()? {
                    if many.len() == MAX_TARGETS {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_TARGETS} entries"
                        )));
                    }
                    many.push(one);
                }
                Ok(OneOrMany(many))
            }
        }

        deserializer.deserialize_any(OneOrManyVisitor(PhantomData))
    }
}

/// A placeholder alone, as a template.
fn placeholder(var: Var) -> Template {
    Template(vec![Piece::Var(var)])
}

/// Literal text, as a template: sent as written, whatever `$` it holds.
fn literal(text: &str) -> Template {
    Template(vec![Piece::Text(text.to_owned())])
}

/// The form fields by which a client authenticates some other way than `client_auth` says.
const CLIENT_CREDENTIALS: [&str; 3] =
    ["client_secret", "client_assertion", "client_assertion_type"];

impl Keys {
    /// Checks the keys against each other and the calls, and folds them into the calls (the
    /// token endpoint's: login and refresh).
    pub(super) fn fold(
        self,
        login: &mut Call,
        refresh: Option<&mut Call>,
    ) -> Result<OAuth, SpecError> {
        let assertion = self.assertion()?;
        if self.dpop.is_some() {
            dpop_feature()?;
        }
        let fields = self.fields();
        for (role, call) in [("login", Some(login)), ("refresh", refresh)] {
            if let Some(call) = call {
                self.fold_into(role, call, &fields)?;
            }
        }
        Ok(OAuth {
            issuer: self.issuer.map(|issuer| issuer.0),
            client_auth: self.client_auth,
            assertion,
            dpop: self.dpop,
        })
    }

    /// How the assertions are made, checking that the method has what it needs, and that what
    /// is given has a method to serve.
    fn assertion(&self) -> Result<Option<Assertion>, SpecError> {
        let method = self.client_auth;
        if let Some(mtls) = method.filter(|m| m.is_mtls()) {
            let by = format!(
                "`client_auth = \"{}\"` authenticates by the TLS client certificate the auth transport presents",
                mtls.name()
            );
            if self.client_key.is_some() {
                return Err(SpecError::at(
                    "client_key",
                    format!("{by}, and signs nothing: remove `client_key`"),
                ));
            }
            if self.client_assertion_file.is_some() {
                return Err(SpecError::at(
                    "client_assertion_file",
                    format!("{by}, and sends no assertion: remove `client_assertion_file`"),
                ));
            }
            return Ok(None);
        }
        let assertion = match (method, &self.client_key, &self.client_assertion_file) {
            (Some(ClientAuth::PrivateKeyJwt), Some(_), Some(_)) => {
                return Err(SpecError::at(
                    "client_assertion_file",
                    "private_key_jwt takes `client_key` or `client_assertion_file`, not both",
                ))
            }
            (Some(ClientAuth::PrivateKeyJwt), Some(key), None) => signed_by_key(key)?,
            (Some(ClientAuth::PrivateKeyJwt), None, Some(file)) => Assertion::File(file.clone()),
            (Some(ClientAuth::PrivateKeyJwt), None, None) => {
                return Err(SpecError::at(
                    "client_auth",
                    "private_key_jwt needs its key: `client_key = { pem_file = \"…\", alg = \"…\" }`, or `client_assertion_file`",
                ))
            }
            (_, Some(_), _) => {
                return Err(SpecError::at(
                    "client_key",
                    "a key for `client_auth = \"private_key_jwt\"`, which is not the method",
                ))
            }
            (_, _, Some(_)) => {
                return Err(SpecError::at(
                    "client_assertion_file",
                    "an assertion for `client_auth = \"private_key_jwt\"`, which is not the method",
                ))
            }
            (Some(ClientAuth::ClientSecretJwt), None, None) => signed_by_secret()?,
            _ => return Ok(None),
        };
        Ok(Some(assertion))
    }

    /// The form fields every token call gets: the client's, then the targets.
    fn fields(&self) -> Vec<(&'static str, Template)> {
        let mut fields = match self.client_auth {
            Some(ClientAuth::ClientSecretPost) => vec![
                ("client_id", placeholder(Var::ClientId)),
                ("client_secret", placeholder(Var::ClientSecret)),
            ],
            // The assertion follows, made for each call; with mutual TLS, the certificate
            // authenticates and `client_id` says whose it is (RFC 8705 §2).
            Some(
                ClientAuth::ClientSecretJwt
                | ClientAuth::PrivateKeyJwt
                | ClientAuth::Tls
                | ClientAuth::SelfSignedTls,
            ) => {
                vec![("client_id", placeholder(Var::ClientId))]
            }
            Some(ClientAuth::ClientSecretBasic) | None => Vec::new(),
        };
        fields.extend(self.resource.0.iter().map(|r| ("resource", literal(&r.0))));
        fields.extend(self.audience.0.iter().map(|a| ("audience", literal(&a.0))));
        fields
    }

    /// Folds the keys into one call: no other client authentication beside `client_auth`, a
    /// form for the fields, none of them written already.
    fn fold_into(
        &self,
        role: &str,
        call: &mut Call,
        fields: &[(&'static str, Template)],
    ) -> Result<(), SpecError> {
        if let Some(method) = self.client_auth {
            let by = format!(
                "the client authenticates by `client_auth = \"{}\"`",
                method.name()
            );
            if call.basic.is_some() {
                return Err(SpecError::at(
                    format!("{role}.basic"),
                    format!("{by}: remove `basic`"),
                ));
            }
            let authorization = call
                .headers
                .iter()
                .any(|(name, _)| name.0 == http::header::AUTHORIZATION);
            if authorization {
                return Err(SpecError::at(
                    format!("{role}.headers.authorization"),
                    format!("{by}: remove the header"),
                ));
            }
            if method == ClientAuth::ClientSecretBasic && call.no_authorization {
                return Err(SpecError::at(
                    format!("{role}.no_authorization"),
                    format!("{by}, which is an `Authorization` header"),
                ));
            }
            if let Body::Form(form) = &call.body {
                let other = form
                    .iter()
                    .find(|(name, _)| CLIENT_CREDENTIALS.contains(&name.0.as_str()));
                if let Some((name, _)) = other {
                    return Err(SpecError::at(
                        format!("{role}.form.{}", name.0),
                        format!("{by}: remove the field"),
                    ));
                }
            }
            // A secret beside the certificate would be a second authentication method.
            let secret = |t: &Template| t.vars().any(|v| *v == Var::ClientSecret);
            if method.is_mtls() && call.templates().any(secret) {
                return Err(SpecError::at(
                    role,
                    format!("{by}, which sends no client secret: remove `${{client_secret}}`"),
                ));
            }
            if method == ClientAuth::ClientSecretBasic {
                call.basic = Some(Basic {
                    username: placeholder(Var::ClientId),
                    password: placeholder(Var::ClientSecret),
                    form_encoded: true,
                });
            }
        }
        let Some((first, _)) = fields.first() else {
            return Ok(());
        };
        let Body::Form(form) = &mut call.body else {
            let key = match *first {
                "resource" | "audience" => *first,
                _ => "client_auth",
            };
            return Err(SpecError::at(
                role,
                format!(
                    "`{key}` is sent in the form of the token request: the call needs a `form`"
                ),
            ));
        };
        let written = form
            .iter()
            .find(|(name, _)| fields.iter().any(|(field, _)| name.0 == *field));
        if let Some((name, _)) = written {
            return Err(SpecError::at(
                format!("{role}.form.{}", name.0),
                "the spec's OAuth2 keys send this field: remove it",
            ));
        }
        if form.0.len() + fields.len() > MAX_FORM_FIELDS {
            return Err(SpecError::at(
                format!("{role}.form"),
                format!("more than {MAX_FORM_FIELDS} entries with the spec's OAuth2 keys"),
            ));
        }
        let named = |(name, value): &(&str, Template)| (Name((*name).to_owned()), value.clone());
        form.0.extend(fields.iter().map(named));
        Ok(())
    }
}

/// `private_key_jwt` signing with `key`: the `jose` feature's.
#[cfg(feature = "jose")]
fn signed_by_key(key: &KeySpec) -> Result<Assertion, SpecError> {
    Ok(Assertion::Key {
        pem_file: key.pem_file.clone(),
        alg: key.alg.0,
        kid: key.kid.clone(),
    })
}

#[cfg(not(feature = "jose"))]
fn signed_by_key(_: &KeySpec) -> Result<Assertion, SpecError> {
    Err(SpecError::at(
        "client_key",
        "signing assertions needs the crate's `jose` feature (or give `client_assertion_file` instead)",
    ))
}

/// `dpop`: the `jose` feature's.
#[cfg(feature = "jose")]
fn dpop_feature() -> Result<(), SpecError> {
    Ok(())
}

#[cfg(not(feature = "jose"))]
fn dpop_feature() -> Result<(), SpecError> {
    Err(SpecError::at(
        "dpop",
        "DPoP signs proofs: it needs the crate's `jose` feature",
    ))
}

/// `client_secret_jwt`: the `jose` feature's.
#[cfg(feature = "jose")]
fn signed_by_secret() -> Result<Assertion, SpecError> {
    Ok(Assertion::SecretJwt)
}

#[cfg(not(feature = "jose"))]
fn signed_by_secret() -> Result<Assertion, SpecError> {
    Err(SpecError::at(
        "client_auth",
        "client_secret_jwt signs assertions: it needs the crate's `jose` feature",
    ))
}

/// The rules `issuer` puts on the rest: the token endpoint comes from the issuer's metadata, so
/// neither a base URL nor a call's URL has anything to say.
pub(super) fn issuer_rules(
    issuer: Option<&str>,
    base_url: Option<&str>,
    calls: [(&str, Option<&Call>); 2],
) -> Result<(), SpecError> {
    let Some(issuer) = issuer else {
        return Ok(());
    };
    checked_issuer(issuer).map_err(|e| SpecError::at("issuer", e))?;
    let says = "with `issuer`, the token endpoint comes from the issuer's metadata";
    if base_url.is_some() {
        return Err(SpecError::at(
            "base_url",
            format!("{says}: remove `base_url`"),
        ));
    }
    for (role, call) in calls {
        if call.is_some_and(|call| call.url != Url::Base) {
            return Err(SpecError::at(
                format!("{role}.url"),
                format!("{says}: remove `url`"),
            ));
        }
    }
    Ok(())
}

impl OAuth {
    /// Fails, naming `client_auth`, when the credentials lack what the method sends: before
    /// the calls are built, whose fields the method wrote and the spec did not.
    pub(super) fn check_credentials(&self, fill: &Fill<'_>) -> Result<(), SpecError> {
        let Some(method) = self.client_auth else {
            return Ok(());
        };
        fill.text(&placeholder(Var::ClientId), "client_auth")?;
        if method.is_mtls() {
            if fill.gives(&Var::ClientSecret) {
                return Err(SpecError::at(
                    "client_auth",
                    format!(
                        "`{}` sends no client secret (the TLS client certificate authenticates the client): give the credentials no `client_secret`",
                        method.name()
                    ),
                ));
            }
        } else if method != ClientAuth::PrivateKeyJwt {
            fill.text(&placeholder(Var::ClientSecret), "client_auth")?;
        }
        Ok(())
    }

    /// `provider` discovering its token endpoint and authenticating its client with assertions,
    /// as the spec says; `token_url` is the login call's URL, the assertions' audience unless
    /// the spec discovers (the issuer is, then).
    pub(super) fn apply(
        &self,
        provider: HttpProvider,
        fill: &Fill<'_>,
        token_url: &str,
    ) -> Result<HttpProvider, SpecError> {
        let provider = match &self.issuer {
            Some(issuer) => {
                let discovered =
                    Discovered::new(issuer).map_err(|e| SpecError::at("issuer", e.to_string()))?;
                // A client authenticating by its certificate takes the `mtls_endpoint_aliases`
                // (RFC 8705 §5), and needs the server to support its method.
                let discovered = match self.client_auth.filter(|m| m.is_mtls()) {
                    Some(mtls) => discovered.for_client(Some(mtls.name()), true),
                    None => discovered,
                };
                provider.discovering(discovered, false)
            }
            None => provider,
        };
        #[cfg(feature = "jose")]
        let provider = match &self.dpop {
            Some(dpop) => {
                let key = match &dpop.pem_file {
                    Some(pem_file) => read_key(
                        &fill.text(pem_file, "dpop.pem_file")?,
                        dpop.alg.0,
                        "dpop.pem_file",
                    )?,
                    None => SigningKey::generate(dpop.alg.0)
                        .map_err(|e| SpecError::at("dpop", e.to_string()))?,
                };
                let key = crate::jose::DpopKey::new(key);
                provider.with_policy(|policy| policy.dpop = Some(key))
            }
            None => provider,
        };
        let Some(assertion) = &self.assertion else {
            return Ok(provider);
        };
        let client_id = fill.text(&placeholder(Var::ClientId), "client_auth")?;
        let assertion = match assertion {
            #[cfg(feature = "jose")]
            Assertion::SecretJwt => {
                let secret = fill.text(&placeholder(Var::ClientSecret), "client_auth")?;
                ClientAssertion::client_secret_jwt(&client_id, secret)
            }
            #[cfg(feature = "jose")]
            Assertion::Key { pem_file, alg, kid } => {
                let key = read_key(
                    &fill.text(pem_file, "client_key.pem_file")?,
                    *alg,
                    "client_key.pem_file",
                )?;
                let key = match kid {
                    Some(kid) => key.with_kid(kid.clone()),
                    None => key,
                };
                ClientAssertion::private_key_jwt(&client_id, key)
            }
            Assertion::File(path) => {
                ClientAssertion::file(&client_id, fill.text(path, "client_assertion_file")?)
            }
        };
        let audience = self.issuer.as_deref().unwrap_or(token_url);
        let mint = assertion
            .mint(audience)
            .map_err(|e| SpecError::at("client_auth", e.to_string()))?;
        Ok(provider.client_assertion(mint))
    }
}

/// The most a key file may hold: a PEM RSA key of 8192 bits is under 7 KiB.
#[cfg(feature = "jose")]
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The PKCS#8 PEM key at `path`, for `alg`. Errors name neither the path (it may come from the
/// environment, a secret) nor anything of the file.
#[cfg(feature = "jose")]
fn read_key(path: &str, alg: Algorithm, key: &'static str) -> Result<SigningKey, SpecError> {
    use std::io::Read as _;
    let at = |message: String| SpecError::at(key, message);
    let unreadable = |e: std::io::Error| at(format!("the key file cannot be read: {}", e.kind()));
    let mut pem = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_KEY_FILE + 1).read_to_string(&mut pem))
        .map_err(unreadable)?;
    if pem.len() as u64 > MAX_KEY_FILE {
        return Err(at("the key file is larger than 64 KiB".to_owned()));
    }
    SigningKey::from_pkcs8_pem(&pem, alg).map_err(|e| at(e.to_string()))
}
