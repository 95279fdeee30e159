//! The server's configuration: defaults, then a TOML file (`--config`), then
//! environment variables, then command-line flags, each overriding the last.
//!
//! | key | environment | default |
//! | --- | --- | --- |
//! | `listen` | `INGRESSOJA_LISTEN` | `127.0.0.1:8080` |
//! | `data` | `INGRESSOJA_DATA` | `./data` |
//! | `development` | `INGRESSOJA_DEVELOPMENT` (`true`/`false`) | `false` |
//! | `secure_cookies` | `INGRESSOJA_SECURE_COOKIES` (`true`/`false`) | `false` |
//! | `demo` | `INGRESSOJA_DEMO` (`true`/`false`) | `false` |
//! | `max_connections` | `INGRESSOJA_MAX_CONNECTIONS` | `20000` |
//! | `max_connections_per_ip` | `INGRESSOJA_MAX_CONNECTIONS_PER_IP` | `256` (trusted proxies exempt) |
//! | `request_timeout_ms` | `INGRESSOJA_REQUEST_TIMEOUT_MS` | `10000` (headers, and then the body, each) |
//! | `trusted_proxies` | `INGRESSOJA_TRUSTED_PROXIES` (comma-separated) | none: the peer's address is the client's |
//! | `[limits]` `reads_per_ip`, `joins_per_ip`, `joins_per_account`, `carts_per_ip`, `carts_per_account` | (file only) | 200, 20, 2, 100, 10 per second, bursts of twice that; 0 turns one off |
//! | `[mail]` `smtp_url` | `INGRESSOJA_SMTP_URL` | none: letters are printed to the log (`smtp://host:port` plain, `?tls=required` STARTTLS, `smtps://user:pass@host:465`) |
//! | `[mail]` `from` | `INGRESSOJA_MAIL_FROM` | `IngressoJá <nao-responda@ingressoja.invalid>` |
//! | `[mail]` `public_url` | `INGRESSOJA_PUBLIC_URL` | `http://` + the listening address: where links in letters point |
//! | `[limits]` `pow_free_joins_per_address`, `pow_max_extra_bits`, `joins_per_address_per_event` | (file only) | 20, 3, 0: a bit more proof of work per doubling of an address's join challenges for an event in ten minutes past 20, at most 3; no quota (`address_pressure.rs`) |

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The data directory.
    pub data: PathBuf,
    /// Development mode: enables `POST /api/dev/session`.
    pub development: bool,
    /// Marks the session cookie `Secure` (set when clients reach the server
    /// over HTTPS, e.g. through a TLS-terminating proxy).
    pub secure_cookies: bool,
    /// Seeds a demo event on first start (implies development mode).
    pub demo: bool,
    /// Open connections beyond this wait to be accepted.
    pub max_connections: usize,
    /// Open connections one address may hold (trusted proxies carry many
    /// clients and are exempt). Fans behind one carrier's NAT share an
    /// address, so this is a bound on abuse, not a per-person limit.
    pub max_connections_per_ip: usize,
    /// A request's headers must arrive within this long, and then its body
    /// within as long again.
    pub request_timeout_ms: u64,
    /// Rate limits (a `[limits]` table).
    pub limits: super::limits::LimitsConfig,
    /// Proxies (load balancers) whose `X-Forwarded-For` is believed; see
    /// `client_address.rs`.
    pub trusted_proxies: Vec<IpAddr>,
    /// E-mail (a `[mail]` table; see `mail/outbox.rs`).
    pub mail: crate::mail::MailConfig,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("./data"),
            development: false,
            secure_cookies: false,
            demo: false,
            max_connections: 20_000,
            max_connections_per_ip: 256,
            request_timeout_ms: 10_000,
            limits: super::limits::LimitsConfig::default(),
            trusted_proxies: Vec::new(),
            mail: crate::mail::MailConfig::default(),
        }
    }
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("invalid configuration in {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        source: toml::de::Error,
    },
    /// An environment variable has a value of the wrong kind.
    #[error("environment variable {name}={value:?} is not valid")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
}

impl ServerConfig {
    /// Defaults, overridden by `file` (if given), then by the environment.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ServerConfig, ConfigFileError> {
        let mut config = match file {
            None => ServerConfig::default(),
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
                        path: path.display().to_string(),
                        source,
                    })?;
                toml::from_str(&text).map_err(|source| ConfigFileError::Parse {
                    path: path.display().to_string(),
                    source,
                })?
            }
        };
        override_from(&env, "INGRESSOJA_LISTEN", &mut config.listen)?;
        override_from(&env, "INGRESSOJA_DATA", &mut config.data)?;
        override_from(&env, "INGRESSOJA_DEVELOPMENT", &mut config.development)?;
        override_from(&env, "INGRESSOJA_DEMO", &mut config.demo)?;
        override_from(
            &env,
            "INGRESSOJA_SECURE_COOKIES",
            &mut config.secure_cookies,
        )?;
        override_from(
            &env,
            "INGRESSOJA_MAX_CONNECTIONS",
            &mut config.max_connections,
        )?;
        override_from(
            &env,
            "INGRESSOJA_MAX_CONNECTIONS_PER_IP",
            &mut config.max_connections_per_ip,
        )?;
        override_from(
            &env,
            "INGRESSOJA_REQUEST_TIMEOUT_MS",
            &mut config.request_timeout_ms,
        )?;
        if let Some(url) = env("INGRESSOJA_SMTP_URL") {
            config.mail.smtp_url = Some(url);
        }
        if let Some(from) = env("INGRESSOJA_MAIL_FROM") {
            config.mail.from = from;
        }
        if let Some(url) = env("INGRESSOJA_PUBLIC_URL") {
            config.mail.public_url = Some(url);
        }
        if let Some(value) = env("INGRESSOJA_TRUSTED_PROXIES") {
            config.trusted_proxies = value
                .split(',')
                .map(str::trim)
                .filter(|entry| !entry.is_empty())
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| ConfigFileError::Env {
                    name: "INGRESSOJA_TRUSTED_PROXIES",
                    value,
                })?;
        }
        Ok(config)
    }
}

fn override_from<T: std::str::FromStr>(
    env: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    field: &mut T,
) -> Result<(), ConfigFileError> {
    if let Some(value) = env(name) {
        *field = value
            .parse()
            .map_err(|_| ConfigFileError::Env { name, value })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ingressoja.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\ndevelopment = true\n").unwrap();
        let env = |name: &str| (name == "INGRESSOJA_LISTEN").then(|| "127.0.0.1:9100".to_string());
        let config = ServerConfig::load(Some(&file), env).unwrap();
        assert_eq!(config.listen.port(), 9100);
        assert!(config.development);
        assert_eq!(config.data, PathBuf::from("./data"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "listne = \"x\"\n").unwrap();
        let error = ServerConfig::load(Some(&file), |_| None).unwrap_err();
        assert!(error.to_string().contains("listne"), "{error}");
        let env = |name: &str| (name == "INGRESSOJA_DEMO").then(|| "yes please".to_string());
        let error = ServerConfig::load(None, env).unwrap_err();
        assert!(error.to_string().contains("INGRESSOJA_DEMO"), "{error}");
        let env = |name: &str| {
            (name == "INGRESSOJA_TRUSTED_PROXIES").then(|| "10.0.0.2, nginx".to_string())
        };
        let error = ServerConfig::load(None, env).unwrap_err();
        assert!(
            error.to_string().contains("INGRESSOJA_TRUSTED_PROXIES"),
            "{error}"
        );
    }

    #[test]
    fn trusted_proxies_come_from_the_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("proxies.toml");
        std::fs::write(&file, "trusted_proxies = [\"10.0.0.2\", \"::1\"]\n").unwrap();
        let config = ServerConfig::load(Some(&file), |_| None).unwrap();
        assert_eq!(
            config.trusted_proxies,
            vec![
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        let env =
            |name: &str| (name == "INGRESSOJA_TRUSTED_PROXIES").then(|| " 10.0.0.3 ,".to_string());
        let config = ServerConfig::load(Some(&file), env).unwrap();
        assert_eq!(
            config.trusted_proxies,
            vec!["10.0.0.3".parse::<IpAddr>().unwrap()]
        );
    }
}
