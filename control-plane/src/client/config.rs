//! The client config file: named contexts (a server, a token, the CA that signs the
//! server's certificate) and the current one, like a kubeconfig.
//!
//! ```yaml
//! apiVersion: coditect.io/v1
//! kind: Config
//! currentContext: admin@local
//! contexts:
//!   - name: admin@local
//!     server: http://127.0.0.1:7420
//!     token: cdt_…
//! ```
//!
//! `up` writes one (`<data>/admin.yaml`, mode 0600) holding the cluster admin's context,
//! the way k3s writes its kubeconfig. What the CLI talks to is [`resolve`]d from flags,
//! then the config named by `--config` (or `CODITECT_CONFIG`), else `~/.coditect/config`,
//! else the admin credential of the control plane in `--data-dir` (`./.coditect`), so the
//! README's first command needs no setup.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::DEFAULT_SERVER;

/// A client config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// It could not be read or written.
    #[error("config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a valid config.
    #[error("config {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (with line and column).
        message: String,
    },
    /// The context named does not exist.
    #[error("config {path} has no context {name:?} (it has: {known})")]
    NoContext {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The names it has.
        known: String,
    },
}

/// One named way to reach a control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Context {
    /// Its name.
    pub name: String,
    /// `http://host:port` or `https://host:port`.
    pub server: String,
    /// The bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// PEM file of the CA (or self-signed certificate) the server's certificate must
    /// chain to, for `https://` servers with a private certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<PathBuf>,
}

/// A client config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientConfig {
    /// `coditect.io/v1`.
    #[serde(default = "api_version")]
    pub api_version: String,
    /// `Config`.
    #[serde(default = "config_kind")]
    pub kind: String,
    /// The context used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    /// The contexts.
    #[serde(default)]
    pub contexts: Vec<Context>,
}

fn api_version() -> String {
    coditect_specs::API_VERSION.to_string()
}

fn config_kind() -> String {
    "Config".to_string()
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            api_version: api_version(),
            kind: config_kind(),
            current_context: None,
            contexts: Vec::new(),
        }
    }
}

impl ClientConfig {
    /// Reads `path`; `None` when there is no such file.
    ///
    /// # Errors
    /// [`ConfigError`] when it cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Option<ClientConfig>, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(ConfigError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        serde_yaml::from_str(&text)
            .map(Some)
            .map_err(|e| ConfigError::Invalid {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
    }

    /// Writes the config to `path` with mode 0600 (it holds tokens), replacing the file
    /// whole (a temp file renamed over it), creating its folder.
    ///
    /// # Errors
    /// [`ConfigError::Io`].
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_yaml::to_string(self).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// A context by name.
    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// The current context, if one is set and exists.
    pub fn current(&self) -> Option<&Context> {
        self.current_context
            .as_deref()
            .and_then(|n| self.context(n))
    }

    /// Adds or replaces a context (by name).
    pub fn set_context(&mut self, context: Context) {
        match self.contexts.iter_mut().find(|c| c.name == context.name) {
            Some(c) => *c = context,
            None => self.contexts.push(context),
        }
    }

    /// Makes `name` the current context.
    ///
    /// # Errors
    /// [`ConfigError::NoContext`] when there is no such context.
    pub fn use_context(&mut self, name: &str, path: &Path) -> Result<(), ConfigError> {
        if self.context(name).is_none() {
            return Err(self.no_context(name, path));
        }
        self.current_context = Some(name.to_string());
        Ok(())
    }

    fn no_context(&self, name: &str, path: &Path) -> ConfigError {
        ConfigError::NoContext {
            path: path.to_path_buf(),
            name: name.to_string(),
            known: self
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// The user's own config: `~/.coditect/config`.
pub fn user_config_path() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".coditect").join("config"))
}

/// The admin credential `up` writes in its data dir.
pub fn admin_config_path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.yaml")
}

/// What the command line says about where to connect.
#[derive(Debug, Clone, Default)]
pub struct ConnectFlags {
    /// `--server`: wins over any context.
    pub server: Option<String>,
    /// `--token`: wins over any context.
    pub token: Option<String>,
    /// `--config`: this file, and no other.
    pub config: Option<PathBuf>,
    /// `--context`: this context instead of the current one.
    pub context: Option<String>,
    /// `--data-dir`: where a local control plane's `admin.yaml` is looked for last.
    pub data_dir: PathBuf,
}

/// Where to connect, and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// `http(s)://host:port`.
    pub server: String,
    /// The bearer token, if any was found.
    pub token: Option<String>,
    /// A CA file to trust for `https://`.
    pub certificate_authority: Option<PathBuf>,
    /// Which config file and context it came from (for messages), if any.
    pub source: Option<String>,
}

/// The config file the CLI reads: `--config`, else `~/.coditect/config` when it exists,
/// else `<data-dir>/admin.yaml` when it exists.
pub fn config_path(flags: &ConnectFlags) -> Option<PathBuf> {
    if let Some(explicit) = &flags.config {
        return Some(explicit.clone());
    }
    user_config_path()
        .filter(|p| p.exists())
        .or_else(|| Some(admin_config_path(&flags.data_dir)).filter(|p| p.exists()))
}

/// Resolves flags, config files and defaults into a [`Connection`].
///
/// # Errors
/// [`ConfigError`] for a config that cannot be read, or a `--context` it lacks.
pub fn resolve(flags: &ConnectFlags) -> Result<Connection, ConfigError> {
    let mut context = None;
    let mut source = None;
    if let Some(path) = config_path(flags) {
        // A named file that does not exist yet reads as empty (as KUBECONFIG does).
        let config = ClientConfig::load(&path)?.unwrap_or_default();
        context = match &flags.context {
            Some(name) => Some(
                config
                    .context(name)
                    .cloned()
                    .ok_or_else(|| config.no_context(name, &path))?,
            ),
            None => config.current().cloned(),
        };
        if let Some(c) = &context {
            source = Some(format!("context {} of {}", c.name, path.display()));
        }
    }
    let server = flags
        .server
        .clone()
        .or_else(|| context.as_ref().map(|c| c.server.clone()))
        .unwrap_or_else(|| DEFAULT_SERVER.to_string());
    Ok(Connection {
        server,
        token: flags
            .token
            .clone()
            .or_else(|| context.as_ref().and_then(|c| c.token.clone())),
        certificate_authority: context.and_then(|c| c.certificate_authority),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ctx(name: &str, server: &str, token: &str) -> Context {
        Context {
            name: name.into(),
            server: server.into(),
            token: Some(token.into()),
            certificate_authority: None,
        }
    }

    #[test]
    fn a_saved_config_is_private_and_reads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config");
        let mut c = ClientConfig::default();
        c.set_context(ctx("a", "http://127.0.0.1:1", "cdt_a_x"));
        c.use_context("a", &path).unwrap();
        c.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(ClientConfig::load(&path).unwrap().unwrap(), c);
    }

    #[test]
    fn flags_win_then_the_named_context_then_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let mut c = ClientConfig::default();
        c.set_context(ctx("a", "http://a:1", "ta"));
        c.set_context(ctx("b", "http://b:1", "tb"));
        c.use_context("a", &path).unwrap();
        c.save(&path).unwrap();
        let flags = ConnectFlags {
            config: Some(path.clone()),
            ..ConnectFlags::default()
        };
        let got = resolve(&flags).unwrap();
        assert_eq!(
            (got.server.as_str(), got.token.as_deref()),
            ("http://a:1", Some("ta"))
        );
        let got = resolve(&ConnectFlags {
            context: Some("b".into()),
            ..flags.clone()
        })
        .unwrap();
        assert_eq!(got.token.as_deref(), Some("tb"));
        let got = resolve(&ConnectFlags {
            server: Some("http://c:1".into()),
            ..flags.clone()
        })
        .unwrap();
        assert_eq!(
            (got.server.as_str(), got.token.as_deref()),
            ("http://c:1", Some("ta"))
        );
        let e = resolve(&ConnectFlags {
            context: Some("zz".into()),
            ..flags
        })
        .unwrap_err();
        assert!(e.to_string().contains("has: a, b"), "{e}");
    }

    #[test]
    fn use_context_refuses_an_unknown_name() {
        let mut c = ClientConfig::default();
        assert!(c.use_context("nope", Path::new("x")).is_err());
    }
}
