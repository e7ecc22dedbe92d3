//! Credentials a spec names: an environment variable, or a `secretRef` read from the
//! secrets folder, laid out as Kubernetes mounts a Secret volume: `{dir}/{name}/{key}`.
//! The folder is `$CODITECT_SECRETS_DIR`, else `secrets/` under the storage root (the
//! control plane's data dir for the local driver). A value is never logged: errors name
//! the variable or file, not what it holds.

use std::path::{Path, PathBuf};

use coditect_specs::agent::Credentials;

/// Where secrets are read from, for an instance whose storage root is `root`.
pub fn folder(root: &Path) -> PathBuf {
    std::env::var_os("CODITECT_SECRETS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("secrets"))
}

/// The credential's value: `Ok(None)` when the spec names none.
///
/// # Errors
/// Why the named variable or secret cannot be read.
pub fn resolve(creds: Option<&Credentials>, dir: &Path) -> Result<Option<String>, String> {
    let Some(creds) = creds else {
        return Ok(None);
    };
    if let Some(var) = &creds.env {
        return std::env::var(var)
            .map(Some)
            .map_err(|_| format!("{var} is not set"));
    }
    if let Some(secret) = &creds.secret_ref {
        let file = dir.join(&secret.name).join(&secret.key);
        return std::fs::read_to_string(&file)
            .map(|v| Some(v.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| {
                format!(
                    "secret {}/{} ({}): {e}",
                    secret.name,
                    secret.key,
                    file.display()
                )
            });
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coditect_specs::agent::SecretRef;

    #[test]
    fn a_secret_ref_reads_the_mounted_file_and_a_missing_one_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("anthropic")).unwrap();
        std::fs::write(dir.path().join("anthropic/api-key"), "sk-ant-secret\n").unwrap();
        let creds = |key: &str| Credentials {
            env: None,
            secret_ref: Some(SecretRef {
                name: "anthropic".into(),
                key: key.into(),
            }),
        };
        assert_eq!(
            resolve(Some(&creds("api-key")), dir.path()),
            Ok(Some("sk-ant-secret".into()))
        );
        let err = resolve(Some(&creds("other")), dir.path()).unwrap_err();
        assert!(
            err.contains("secret anthropic/other") && err.contains("anthropic/other"),
            "{err}"
        );
        let unset = Credentials {
            env: Some("CODITECT_TEST_VARIABLE_NEVER_SET".into()),
            secret_ref: None,
        };
        assert_eq!(
            resolve(Some(&unset), dir.path()),
            Err("CODITECT_TEST_VARIABLE_NEVER_SET is not set".into())
        );
        assert_eq!(resolve(None, dir.path()), Ok(None));
    }
}
