//! From a checked spec to an [`HttpProvider`]: URLs joined to the base, placeholders filled from
//! the credentials and the environment.

use crate::provider::generic::{basic, basic_form_encoded, join};
use crate::provider::{CallSpec, Encoding, HttpProvider, Param};
use crate::secret::Secret;

use super::call::{Body, Call, Url};
use super::credentials::{Credentials, Given};
use super::json::JsonNode;
use super::oauth2::issuer_rules;
use super::template::{Piece, Template, Var};
use super::{ProviderSpec, SpecError};

impl ProviderSpec {
    /// The provider, with the spec's placeholders filled from `credentials` (and
    /// `[defaults]`) and environment variables read now.
    ///
    /// Fails, naming the field, when a placeholder has no value, an environment variable is not
    /// set, a relative URL has no base, or a value makes an invalid header.
    pub fn build(&self, credentials: &Credentials) -> Result<HttpProvider, SpecError> {
        let issuer = self.oauth.issuer.as_deref();
        let calls = [
            ("login", Some(&self.login)),
            ("refresh", self.refresh.as_ref()),
        ];
        issuer_rules(issuer, self.base_url.as_deref(), calls)?;
        let fill = Fill {
            spec: self,
            credentials,
        };
        self.oauth.check_credentials(&fill)?;
        let token_url = fill.url("login", &self.login)?;
        let login = fill.call("login", &self.login)?;
        let provider = match &self.refresh {
            Some(refresh) => HttpProvider::new(login, fill.call("refresh", refresh)?)
                .refresh_rejects(refresh.rejects.clone()),
            None => HttpProvider::login_only(login),
        };
        let policy = self.policy.clone();
        let provider = provider
            .tokens(self.tokens.clone())
            .login_rejects(self.login.rejects.clone())
            .with_policy(|p| *p = policy);
        self.oauth.apply(provider, &fill, &token_url)
    }
}

/// One build: where placeholder values come from.
pub(super) struct Fill<'a> {
    spec: &'a ProviderSpec,
    credentials: &'a Credentials,
}

impl Fill<'_> {
    /// Where `call` goes: its absolute URL, or its path joined to the base URL (the issuer
    /// stands in for the base with discovery, whose metadata names the endpoint).
    fn url(&self, role: &str, call: &Call) -> Result<String, SpecError> {
        Ok(match &call.url {
            Url::Absolute(url) => url.clone(),
            Url::Base | Url::Relative(_) => {
                let base = (self.spec.base_url.as_deref())
                    .or(self.spec.oauth.issuer.as_deref())
                    .ok_or_else(|| {
                        SpecError::at(
                            format!("{role}.url"),
                            "a relative URL needs a base URL: set `base_url` or give one",
                        )
                    })?;
                super::call::base(base).map_err(|e| SpecError::at("base_url", e))?;
                match &call.url {
                    Url::Relative(path) => join(base, path),
                    _ => base.to_owned(),
                }
            }
        })
    }

    fn call(&self, role: &str, call: &Call) -> Result<CallSpec, SpecError> {
        let url = self.url(role, call)?;
        let config = |path: String| move |e: crate::AuthError| SpecError::at(path, e.to_string());
        let mut spec =
            CallSpec::new(call.method.clone(), &url).map_err(config(format!("{role}.url")))?;
        for (name, value) in call.query.iter() {
            let name = &name.0;
            spec = spec.query(
                name.clone(),
                self.param(value, &format!("{role}.query.{name}"))?,
            );
        }
        for (name, value) in call.headers.iter() {
            let path = format!("{role}.headers.{}", name.0);
            let value = self.param(value, &path)?;
            spec = spec
                .header_param(name.0.as_str(), value)
                .map_err(config(path))?;
        }
        if let Some(b) = &call.basic {
            let path = format!("{role}.basic");
            let user = self.text(&b.username, &format!("{path}.username"))?;
            let password = Secret::from(self.text(&b.password, &format!("{path}.password"))?);
            let value = match b.form_encoded {
                true => basic_form_encoded(&user, &password),
                false => basic(&user, &password),
            };
            spec = spec.basic_auth_value(value.map_err(config(path))?);
        }
        match &call.body {
            Body::None => {}
            Body::Form(form) => {
                spec = spec.encoding(Encoding::Form);
                for (name, value) in form.iter() {
                    let name = &name.0;
                    let value = self.param(value, &format!("{role}.form.{name}"))?;
                    spec = spec.field_at([name.clone()], value);
                }
            }
            Body::Json(entries) => {
                spec = spec.encoding(Encoding::Json);
                spec = self.json(spec, &mut vec![], entries, &format!("{role}.json"))?;
            }
        }
        Ok(match call.no_authorization {
            true => spec.without_authorization(),
            false => spec,
        })
    }

    /// Adds the fields of a JSON object at `parents`.
    fn json(
        &self,
        mut spec: CallSpec,
        parents: &mut Vec<String>,
        entries: &[(String, JsonNode)],
        path: &str,
    ) -> Result<CallSpec, SpecError> {
        for (name, node) in entries {
            parents.push(name.clone());
            let field = || parents.clone();
            spec = match node {
                JsonNode::Text(t) => spec.field_at(field(), self.param(t, &dotted(path, parents))?),
                JsonNode::Literal(value) => spec.field_at(field(), Param::json(value.clone())),
                JsonNode::Object(inner) if inner.is_empty() => {
                    spec.field_at(field(), Param::json(serde_json::json!({})))
                }
                JsonNode::Object(inner) => self.json(spec, parents, inner, path)?,
            };
            parents.pop();
        }
        Ok(spec)
    }

    /// A template as a [`Param`]: secret where a placeholder is.
    fn param(&self, template: &Template, path: &str) -> Result<Param, SpecError> {
        let mut param: Option<Param> = None;
        for piece in &template.0 {
            let next = match piece {
                Piece::Text(text) => Param::text(text.clone()),
                Piece::Var(Var::RefreshToken) => Param::refresh_token(),
                Piece::Var(var) => match self.value(var, path)? {
                    Given::Plain(text) => Param::text(text),
                    Given::Secret(secret) => Param::secret(secret),
                },
            };
            param = Some(match param {
                Some(param) => param.then(next),
                None => next,
            });
        }
        Ok(param.unwrap_or_else(|| Param::text("")))
    }

    /// A template without `${refresh_token}` as text (for HTTP Basic, the client's assertion).
    pub(super) fn text(&self, template: &Template, path: &str) -> Result<String, SpecError> {
        self.param(template, path)?
            .render(None)
            .map_err(|e| SpecError::at(path, e.to_string()))
    }

    /// Whether the credentials give a value for `var` (a default does not count).
    pub(super) fn gives(&self, var: &Var) -> bool {
        self.credentials.get(var).is_some()
    }

    /// A placeholder's value: a credential, a default, or an environment variable.
    fn value(&self, var: &Var, path: &str) -> Result<Given, SpecError> {
        if let Var::Env(name) = var {
            return match std::env::var(name) {
                Ok(value) => Ok(Given::Secret(Secret::from(value))),
                Err(std::env::VarError::NotPresent) => Err(SpecError::at(
                    path,
                    format!("{var}: the environment variable is not set"),
                )),
                Err(std::env::VarError::NotUnicode(_)) => Err(SpecError::at(
                    path,
                    format!("{var}: the environment variable is not UTF-8"),
                )),
            };
        }
        let defaults = &self.spec.defaults;
        let default = match var {
            Var::Username => defaults.username.clone(),
            Var::ClientId => defaults.client_id.clone(),
            Var::Scope => defaults.scope.clone(),
            _ => None,
        };
        self.credentials
            .get(var)
            .or(default.map(Given::Plain))
            .ok_or_else(|| SpecError::at(path, format!("{var}: not given in the credentials")))
    }
}

fn dotted(path: &str, parents: &[String]) -> String {
    let mut out = path.to_owned();
    for name in parents {
        out.push('.');
        out.push_str(name);
    }
    out
}
