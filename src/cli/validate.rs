//! `flotilla validate`.

use std::path::PathBuf;

use super::Environment;
use crate::error::{Error, Exit};

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Plan files to check.
    #[arg(required = true)]
    pub plans: Vec<PathBuf>,
}

pub fn run(_args: ValidateArgs, _env: &Environment) -> Result<Exit, Error> {
    Err(Error::Other("validate: not yet implemented".into()))
}
