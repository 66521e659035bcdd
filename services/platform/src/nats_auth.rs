//! How a process proves who it is to NATS, and whether it speaks TLS to it (issue 15.5;
//! docs/security.md, docs/bus.md "Users and permissions").
//!
//! From the environment, all optional (the local NATS of `make run` and `make test` has no
//! users, so nothing is set there):
//!
//! | variable | meaning |
//! |---|---|
//! | `NATS_CREDS` | a `.creds` file (JWT + nkey seed), for an operator/account setup |
//! | `NATS_USER`, `NATS_PASSWORD` | a user of the server's `authorization` block (infra/nats/nats-server.conf) |
//! | `NATS_TLS_CA` | PEM file of the CA that signed the server's certificate: TLS is then required |
//! | `NATS_TLS_CERT`, `NATS_TLS_KEY` | a client certificate and key (PEM), when the server verifies clients |
//! | `NATS_TLS_REQUIRED` | `true`: refuse a server that does not offer TLS even without our own CA |
//!
//! A user and password may also be in `NATS_URL` (`nats://user:pass@host:4222`). Whatever way a
//! password arrives, no error and no log line prints it: [`redact_url`] blanks it, and
//! [`NatsAuth`]'s `Debug` shows `***`.

use crate::config::ConfigError;
use std::path::PathBuf;

/// A password that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(p: impl Into<String>) -> Self {
        Self(p.into())
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Credentials and TLS settings for the NATS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsAuth {
    /// `NATS_CREDS`.
    pub creds_file: Option<PathBuf>,
    /// `NATS_USER` and `NATS_PASSWORD`.
    pub user: Option<(String, Password)>,
    /// `NATS_TLS_CA`.
    pub tls_ca: Option<PathBuf>,
    /// `NATS_TLS_CERT` and `NATS_TLS_KEY`.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// `NATS_TLS_REQUIRED` (implied by a CA or a client certificate).
    pub tls_required: bool,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn file(name: &str) -> Result<Option<PathBuf>, ConfigError> {
    let Some(v) = var(name) else {
        return Ok(None);
    };
    let path = PathBuf::from(&v);
    if !path.is_file() {
        return Err(ConfigError::Invalid {
            var: name.into(),
            value: v,
            problem: "no such file".into(),
        });
    }
    Ok(Some(path))
}

impl NatsAuth {
    /// A user of the server's `authorization` block.
    pub fn user(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: Some((user.into(), Password::new(password))),
            ..Self::default()
        }
    }

    /// Trust the server's certificate when signed by the CA in this PEM file; TLS is required.
    pub fn with_tls_ca(mut self, ca: PathBuf) -> Self {
        self.tls_ca = Some(ca);
        self.tls_required = true;
        self
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let creds_file = file("NATS_CREDS")?;
        let user = match (var("NATS_USER"), var("NATS_PASSWORD")) {
            (Some(u), Some(p)) => Some((u, Password::new(p))),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    var: "NATS_PASSWORD".into(),
                    hint: "NATS_USER is set; set its password too".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    var: "NATS_USER".into(),
                    hint: "NATS_PASSWORD is set; say whose it is".into(),
                });
            }
        };
        if creds_file.is_some() && user.is_some() {
            return Err(ConfigError::Invalid {
                var: "NATS_CREDS".into(),
                value: "(set)".into(),
                problem: "set either NATS_CREDS or NATS_USER/NATS_PASSWORD, not both".into(),
            });
        }
        let tls_ca = file("NATS_TLS_CA")?;
        let tls_client = match (file("NATS_TLS_CERT")?, file("NATS_TLS_KEY")?) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    var: "NATS_TLS_KEY".into(),
                    hint: "NATS_TLS_CERT is set; set the file of its private key too".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    var: "NATS_TLS_CERT".into(),
                    hint: "NATS_TLS_KEY is set; set the file of its certificate too".into(),
                });
            }
        };
        let tls_required = crate::config::parse_or("NATS_TLS_REQUIRED", false)?
            || tls_ca.is_some()
            || tls_client.is_some();
        Ok(Self {
            creds_file,
            user,
            tls_ca,
            tls_client,
            tls_required,
        })
    }

    /// The client options these settings give (before name, timeouts and reconnects).
    pub async fn options(&self) -> Result<async_nats::ConnectOptions, String> {
        crate::install_crypto_provider();
        let mut o = match &self.creds_file {
            Some(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| format!("NATS_CREDS {}: {e}", path.display()))?,
            None => async_nats::ConnectOptions::new(),
        };
        if let Some((user, Password(password))) = &self.user {
            o = o.user_and_password(user.clone(), password.clone());
        }
        if let Some(ca) = &self.tls_ca {
            o = o.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &self.tls_client {
            o = o.add_client_certificate(cert.clone(), key.clone());
        }
        Ok(o.require_tls(self.tls_required))
    }

    /// Whose credentials these are, for messages: the user name or the creds file, never a
    /// password.
    pub fn describe(&self) -> String {
        match (&self.user, &self.creds_file) {
            (Some((u, _)), _) => format!("user {u}"),
            (None, Some(f)) => format!("credentials {}", f.display()),
            (None, None) => "no credentials".into(),
        }
    }
}

/// The servers of a NATS URL (comma-separated), without their `user:password@`, and the first
/// user and password found in them. The client library ignores credentials in a URL, so we take
/// them out and send them as [`NatsAuth::user`] does (when nothing else is configured).
pub fn split_url_credentials(url: &str) -> (Vec<String>, Option<(String, Password)>) {
    let mut found = None;
    let servers = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|one| {
            let (scheme, rest) = match one.find("://") {
                Some(i) => one.split_at(i + 3),
                None => ("", one),
            };
            let host_start = rest.find('/').unwrap_or(rest.len());
            match rest[..host_start].rfind('@') {
                Some(at) => {
                    if let (None, Some((user, password))) = (&found, rest[..at].split_once(':')) {
                        found = Some((user.to_string(), Password::new(password)));
                    }
                    format!("{scheme}{}", &rest[at + 1..])
                }
                None => one.to_string(),
            }
        })
        .collect();
    (servers, found)
}

/// A NATS URL (or a comma-separated list) with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let (scheme, rest) = match one.find("://") {
                Some(i) => one.split_at(i + 3),
                None => ("", one),
            };
            let host_start = rest.find('/').unwrap_or(rest.len());
            match rest[..host_start].rfind('@') {
                Some(at) => {
                    let userinfo = &rest[..at];
                    let user = userinfo.split(':').next().unwrap_or("");
                    let hidden = if userinfo.contains(':') {
                        format!("{user}:***")
                    } else {
                        // A token alone (`nats://token@host`) is a secret too.
                        "***".into()
                    };
                    format!("{scheme}{hidden}{}", &rest[at..])
                }
                None => one.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_hidden() {
        assert_eq!(
            redact_url("nats://svc:s3cret@nats-1:4222,tls://tok3n@nats-2:4222,nats://n3:4222"),
            "nats://svc:***@nats-1:4222,tls://***@nats-2:4222,nats://n3:4222"
        );
        assert_eq!(redact_url("127.0.0.1:4222"), "127.0.0.1:4222");
    }

    #[test]
    fn credentials_in_urls_are_taken_out() {
        let (servers, user) = split_url_credentials("nats://svc:s3cret@n1:4222,nats://n2:4222");
        assert_eq!(servers, ["nats://n1:4222", "nats://n2:4222"]);
        assert_eq!(user, Some(("svc".into(), Password::new("s3cret"))));
        let (servers, user) = split_url_credentials("127.0.0.1:4222");
        assert_eq!(servers, ["127.0.0.1:4222"]);
        assert_eq!(user, None);
    }

    #[test]
    fn a_password_never_prints() {
        let auth = NatsAuth::user("connector", "s3cret");
        assert!(!format!("{auth:?}").contains("s3cret"));
        assert_eq!(auth.describe(), "user connector");
    }
}
