//! `flotilla plan`.

use std::path::PathBuf;

use super::Environment;
use crate::error::{Error, Exit};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// The plan file.
    pub plan: PathBuf,
}

pub fn run(_args: PlanArgs, _env: &Environment) -> Result<Exit, Error> {
    Err(Error::Other("plan: not yet implemented".into()))
}
