//! The plan language: loading YAML with positions, schema and semantic validation, and expansion into operations.
//!
//! [`load_path`] and [`load_source`] run the whole pipeline: size and encoding checks, YAML parsing
//! (serde-saphyr as a budgeted gate, saphyr for the positioned tree), `${VAR}` interpolation,
//! JSON Schema validation, semantic checks, and expansion into an [`ExpandedPlan`]. Every problem
//! found at a stage is reported together; later stages run only when earlier ones found none.

pub mod diagnostic;
pub mod expand;
pub mod interpolate;
mod raw;
pub mod resolved;
pub mod schema;
pub mod secrets;
pub mod select;
pub mod source;

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

pub use diagnostic::{Diagnostic, LoadError, Pos, SourceLines};
pub use resolved::{ClusterTarget, ExpandedPlan, Operation, Rollout, Wave};

/// The path that names standard input, for a plan read from a pipe.
pub const STDIN: &str = "-";

/// Reads, interpolates (from the process environment), validates and expands the plan at `path`;
/// `-` is standard input.
pub fn load_path(path: &Path) -> Result<ExpandedPlan, LoadError> {
    let read_error = |e: std::io::Error| {
        LoadError::single(Diagnostic::file(path, format!("cannot read the plan: {e}")))
    };
    if path == Path::new(STDIN) {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .take(source::MAX_PLAN_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > source::MAX_PLAN_BYTES {
            return Err(source::too_large(path, bytes.len() as u64));
        }
        return load_source(path, &bytes, &|name| std::env::var(name).ok());
    }
    let file = std::fs::File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size > source::MAX_PLAN_BYTES {
        return Err(source::too_large(path, size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // Read one byte past the limit so a file that grew since `metadata` is still refused.
    file.take(source::MAX_PLAN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    load_source(path, &bytes, &|name| std::env::var(name).ok())
}

/// The plan's identity, its one hash: SHA-256 of the file and of what variables put into it
/// (see [`interpolate::Interpolation::substituted`]); the file's own without variables.
fn plan_hash(bytes: &[u8], substituted: &[String]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(bytes);
    for line in substituted {
        hasher.update(b"\0");
        hasher.update(line.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// [`load_path`] on bytes already read, with the variable lookup as a parameter;
/// `path` names the file in messages and gives the default plan name.
pub fn load_source(
    path: &Path,
    bytes: &[u8],
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<ExpandedPlan, LoadError> {
    let text = source::decode(path, bytes)?;
    let mut document = source::parse(path, text)?;

    let (mut redactor, secret_variables) = secrets::early_rules(&document.value);
    let interpolation =
        interpolate::interpolate_tree_with(&mut document.value, vars, &redactor, &secret_variables);
    interpolation.secret_values_into(&document.value, &mut redactor);
    // Every diagnostic from here on masks what the plan's own rules find secret, too.
    let new_lines = || SourceLines::with_redactor(text, redactor.clone());
    let problems = interpolation.problems;
    if !problems.is_empty() {
        let lines = new_lines();
        return Err(LoadError::new(
            problems
                .into_iter()
                .map(|p| {
                    let pos = document.positions.value(&p.pointer);
                    Diagnostic::in_lines(path, &lines, pos, p.message)
                })
                .collect(),
        ));
    }

    let problems = schema::check(&document.value, &document.positions);
    if !problems.is_empty() {
        let lines = new_lines();
        return Err(LoadError::new(
            problems
                .into_iter()
                .map(|p| Diagnostic::in_lines(path, &lines, p.pos, p.message))
                .collect(),
        ));
    }

    let raw: raw::RawPlan = serde_json::from_value(document.value).map_err(|e| {
        // The schema admits only what these types read; this is a bug if it happens.
        LoadError::single(Diagnostic::at(
            path,
            text,
            Pos::START,
            format!("the plan does not match flotilla's model: {e}"),
        ))
    })?;

    let name = raw.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .filter(|_| path != Path::new(STDIN))
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plan".to_owned())
    });
    let hash = plan_hash(bytes, &interpolation.substituted);
    let lines = new_lines();
    let mut ctx = expand::Context {
        path,
        lines: &lines,
        positions: &document.positions,
        problems: secrets::check(&raw.secrets.keys, &document.positions)
            .into_iter()
            .map(|p| Diagnostic::in_lines(path, &lines, p.pos, p.message))
            .collect(),
    };
    match expand::expand(&raw, name, hash, &mut ctx) {
        Some(mut plan) if ctx.problems.is_empty() => {
            plan.redactor = redactor;
            Ok(plan)
        }
        _ => Err(LoadError::new(ctx.problems)),
    }
}
