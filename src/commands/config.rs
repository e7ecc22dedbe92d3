//! `coditect config get-contexts|current-context|use-context|set-context`: the client
//! config (`--config`, or `~/.coditect/config`), like `kubectl config`.

use coditect_control_plane::client::config::{ClientConfig, Context, config_path};

use crate::cli::ConfigCommand;
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured, print_table};

pub fn run(
    format: OutputFormat,
    remote: &super::Remote,
    cmd: &ConfigCommand,
) -> Result<(), Failure> {
    let invalid = |e: coditect_control_plane::client::config::ConfigError| {
        eprintln!("error: {e}");
        Failure::InvalidInput
    };
    match cmd {
        ConfigCommand::GetContexts | ConfigCommand::CurrentContext => {
            // Read what the other commands read (the admin credential included).
            let Some(path) = config_path(&remote.flags) else {
                return Err(Failure::Refused(
                    "no client config: none at ~/.coditect/config, and no admin.yaml of a local control plane here".into(),
                ));
            };
            let config = ClientConfig::load(&path)
                .map_err(invalid)?
                .unwrap_or_default();
            if matches!(cmd, ConfigCommand::CurrentContext) {
                let current = config.current_context.clone().ok_or_else(|| {
                    Failure::Refused(format!("{} has no current context", path.display()))
                })?;
                outln!("{current}");
                return Ok(());
            }
            if format.is_structured() {
                let names: Vec<_> = config
                    .contexts
                    .iter()
                    .map(|c| serde_json::json!({"name": c.name, "server": c.server, "current": Some(&c.name) == config.current_context.as_ref()}))
                    .collect();
                return Ok(print_structured(format, &names)?);
            }
            let rows: Vec<Vec<String>> = config
                .contexts
                .iter()
                .map(|c| {
                    let current = Some(&c.name) == config.current_context.as_ref();
                    vec![
                        if current { "*" } else { "" }.into(),
                        c.name.clone(),
                        c.server.clone(),
                    ]
                })
                .collect();
            print_table(&["CURRENT", "NAME", "SERVER"], &rows);
            eprintln!("(from {})", path.display());
            Ok(())
        }
        ConfigCommand::UseContext(args) => {
            let path = remote.config_file()?;
            let mut config = ClientConfig::load(&path)
                .map_err(invalid)?
                .unwrap_or_default();
            config.use_context(&args.name, &path).map_err(invalid)?;
            config.save(&path).map_err(invalid)?;
            outln!("switched to context {:?} ({})", args.name, path.display());
            Ok(())
        }
        ConfigCommand::SetContext(args) => {
            let path = remote.config_file()?;
            let mut config = ClientConfig::load(&path)
                .map_err(invalid)?
                .unwrap_or_default();
            let token = match &args.token_file {
                Some(f) => Some(
                    std::fs::read_to_string(f)
                        .map_err(|e| Failure::Refused(format!("read {}: {e}", f.display())))?
                        .trim()
                        .to_string(),
                ),
                None => remote.flags.token.clone(),
            };
            let server = remote.flags.server.clone().ok_or_else(|| {
                Failure::Refused("name the context's server with --server URL".into())
            })?;
            config.set_context(Context {
                name: args.name.clone(),
                server,
                token,
                certificate_authority: args.certificate_authority.clone(),
            });
            if args.current || config.current_context.is_none() {
                config.current_context = Some(args.name.clone());
            }
            config.save(&path).map_err(invalid)?;
            outln!("context {:?} set in {}", args.name, path.display());
            Ok(())
        }
    }
}
