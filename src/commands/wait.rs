//! `coditect wait --for=condition=Ready workspace/NAME --timeout 60s`.

use coditect_control_plane::client::ClientError;

use crate::cli::WaitArgs;
use crate::exit::Failure;
use crate::output::{OutputFormat, print_structured};

pub async fn run(
    format: OutputFormat,
    remote: &super::Remote,
    args: &WaitArgs,
) -> Result<(), Failure> {
    let Some(condition) = args.condition.strip_prefix("condition=") else {
        eprintln!("error: --for takes condition=TYPE, e.g. --for=condition=Ready");
        return Err(Failure::InvalidInput);
    };
    let Some((kind, name)) = args.object.split_once('/') else {
        eprintln!("error: name the object as KIND/NAME, e.g. workspace/alice-main");
        return Err(Failure::InvalidInput);
    };
    let client = remote.client()?;
    let key = client
        .find(super::kind(kind)?, name, args.org.as_deref())
        .await?
        .key();
    match client
        .wait_for(&key, condition, args.timeout.to_std())
        .await
    {
        Ok(object) => {
            match format {
                OutputFormat::Json | OutputFormat::Yaml => print_structured(format, &object)?,
                _ => outln!("{key} condition met: {condition}"),
            }
            Ok(())
        }
        Err(ClientError::Other(why)) => Err(Failure::Unavailable(why)),
        Err(e) => Err(e.into()),
    }
}
