//! Credentials: where they are looked for, in which order, and the one type that holds them.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::secret::Secret;

/// What requests are authenticated with. `Debug` prints no secret: every secret field is a
/// [`Secret`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// Access key / secret key: every request is signed with `SDK-HMAC-SHA256`.
    AkSk {
        access_key: Secret,
        secret_key: Secret,
        /// Temporary credentials' token, sent as `X-Security-Token`.
        security_token: Option<Secret>,
        /// Sent as `X-Project-Id` when the plan's cluster has no `project_id` of its own.
        project_id: Option<String>,
    },
    /// An IAM token, sent as `X-Auth-Token`.
    Token(Secret),
}

impl Credentials {
    /// The project id the credentials came with, if any.
    pub fn project_id(&self) -> Option<&str> {
        match self {
            Credentials::AkSk { project_id, .. } => project_id.as_deref(),
            Credentials::Token(_) => None,
        }
    }

    /// A short description for logs: the kind, never a secret.
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::AkSk {
                security_token: Some(_),
                ..
            } => "temporary AK/SK",
            Credentials::AkSk { .. } => "AK/SK",
            Credentials::Token(_) => "IAM token",
        }
    }
}

/// Looks up one environment variable.
pub type EnvLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where [`resolve`] looks, first found wins: the token file, then the environment, then the
/// SDK's profile file.
pub struct CredentialSources {
    /// `--token-file PATH`: a file holding an IAM token.
    pub token_file: Option<PathBuf>,
    /// The environment; tests pass a map instead of touching the process environment.
    pub env: EnvLookup,
    /// The profile file; `None` means the SDK's default: `$HUAWEICLOUD_SDK_CREDENTIALS_FILE`,
    /// else `~/.huaweicloud/credentials`.
    pub profile_file: Option<PathBuf>,
}

impl fmt::Debug for CredentialSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialSources")
            .field("token_file", &self.token_file)
            .field("profile_file", &self.profile_file)
            .finish_non_exhaustive()
    }
}

impl CredentialSources {
    /// The process environment, and the default profile file.
    pub fn from_process(token_file: Option<PathBuf>) -> Self {
        CredentialSources {
            token_file,
            env: Box::new(|name| std::env::var(name).ok()),
            profile_file: None,
        }
    }

    /// A fixed environment (tests, embedding), and the default profile file under its `HOME`.
    pub fn from_map(token_file: Option<PathBuf>, env: HashMap<String, String>) -> Self {
        CredentialSources {
            token_file,
            env: Box::new(move |name| env.get(name).cloned()),
            profile_file: None,
        }
    }

    /// A variable's value; set but empty counts as unset.
    fn var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.trim().is_empty())
    }

    /// The profile file that will be read, if a home directory is known.
    pub fn profile_path(&self) -> Option<PathBuf> {
        if let Some(path) = &self.profile_file {
            return Some(path.clone());
        }
        if let Some(path) = self.var(ENV_CREDENTIALS_FILE) {
            return Some(PathBuf::from(path));
        }
        self.var("HOME")
            .or_else(|| self.var("USERPROFILE"))
            .map(|home| Path::new(&home).join(".huaweicloud").join("credentials"))
    }
}

pub const ENV_AK: &str = "HUAWEICLOUD_SDK_AK";
pub const ENV_SK: &str = "HUAWEICLOUD_SDK_SK";
pub const ENV_SECURITY_TOKEN: &str = "HUAWEICLOUD_SDK_SECURITY_TOKEN";
pub const ENV_PROJECT_ID: &str = "HUAWEICLOUD_SDK_PROJECT_ID";
pub const ENV_AK_ALIAS: &str = "CLOUD_SDK_AK";
pub const ENV_SK_ALIAS: &str = "CLOUD_SDK_SK";
pub const ENV_TOKEN: &str = "OS_AUTH_TOKEN";
pub const ENV_CREDENTIALS_FILE: &str = "HUAWEICLOUD_SDK_CREDENTIALS_FILE";
pub const PROFILE_SECTION: &str = "basiccredentials";

/// Why no usable credentials were found. Messages name files and variables, never values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialsError {
    #[error(
        "no credentials found; looked in, in this order: --token-file ({token_file}); \
         the environment ({ENV_AK} and {ENV_SK}, or {ENV_AK_ALIAS} and {ENV_SK_ALIAS}, \
         or {ENV_TOKEN}); the profile file {profile} (section [{PROFILE_SECTION}], keys ak and sk)"
    )]
    NotFound { token_file: String, profile: String },
    #[error("cannot read the token file {path}: {reason}")]
    TokenFile { path: PathBuf, reason: String },
    #[error("the token file {path} is empty")]
    EmptyTokenFile { path: PathBuf },
    #[error("{present} is set but {missing} is not: set both, or neither")]
    IncompleteEnvironment {
        present: &'static str,
        missing: &'static str,
    },
    #[error("cannot read the profile file {path}: {reason}")]
    ProfileFile { path: PathBuf, reason: String },
    #[error(
        "the profile file {path} has `{present}` but not `{missing}` in [{PROFILE_SECTION}]: set both"
    )]
    IncompleteProfile {
        path: PathBuf,
        present: &'static str,
        missing: &'static str,
    },
}

/// Where the credentials' project id came from, as `flotilla plan` tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectIdOrigin {
    /// `HUAWEICLOUD_SDK_PROJECT_ID`.
    Environment,
    /// `project_id` in the profile file's `[basiccredentials]`.
    ProfileFile,
}

/// Finds the credentials: `--token-file`, then the environment, then the profile file.
pub fn resolve(sources: &CredentialSources) -> Result<Credentials, CredentialsError> {
    resolve_with_origin(sources).map(|(credentials, _)| credentials)
}

/// [`resolve`], and where the credentials' project id came from (`None` when they carry none).
pub fn resolve_with_origin(
    sources: &CredentialSources,
) -> Result<(Credentials, Option<ProjectIdOrigin>), CredentialsError> {
    let env_origin = |credentials: Credentials| {
        let origin = credentials
            .project_id()
            .map(|_| ProjectIdOrigin::Environment);
        (credentials, origin)
    };
    if let Some(path) = &sources.token_file {
        return read_token_file(path).map(|c| (c, None));
    }
    if let Some(found) = from_environment(sources)? {
        return Ok(env_origin(found));
    }
    let profile = sources.profile_path();
    if let Some(path) = &profile
        && let Some((found, from_file)) = from_profile(path, sources.var(ENV_PROJECT_ID))?
    {
        if from_file {
            return Ok((found, Some(ProjectIdOrigin::ProfileFile)));
        }
        return Ok(env_origin(found));
    }
    Err(CredentialsError::NotFound {
        token_file: "not given".to_owned(),
        profile: match profile {
            Some(path) => format!("{} (absent or without keys)", path.display()),
            None => "~/.huaweicloud/credentials (no home directory known)".to_owned(),
        },
    })
}

fn read_token_file(path: &Path) -> Result<Credentials, CredentialsError> {
    let text = std::fs::read_to_string(path).map_err(|e| CredentialsError::TokenFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CredentialsError::EmptyTokenFile {
            path: path.to_owned(),
        });
    }
    Ok(Credentials::Token(Secret::new(token)))
}

fn from_environment(sources: &CredentialSources) -> Result<Option<Credentials>, CredentialsError> {
    let pick = |primary: &'static str, alias: &'static str| {
        sources
            .var(primary)
            .map(|v| (primary, v))
            .or_else(|| sources.var(alias).map(|v| (alias, v)))
    };
    let ak = pick(ENV_AK, ENV_AK_ALIAS);
    let sk = pick(ENV_SK, ENV_SK_ALIAS);
    match (ak, sk) {
        (Some((_, ak)), Some((_, sk))) => Ok(Some(Credentials::AkSk {
            access_key: Secret::new(ak.trim()),
            secret_key: Secret::new(sk.trim()),
            security_token: sources
                .var(ENV_SECURITY_TOKEN)
                .map(|t| Secret::new(t.trim())),
            project_id: sources.var(ENV_PROJECT_ID).map(|p| p.trim().to_owned()),
        })),
        (Some((present, _)), None) => Err(CredentialsError::IncompleteEnvironment {
            present,
            missing: ENV_SK,
        }),
        (None, Some((present, _))) => Err(CredentialsError::IncompleteEnvironment {
            present,
            missing: ENV_AK,
        }),
        (None, None) => Ok(sources
            .var(ENV_TOKEN)
            .map(|t| Credentials::Token(Secret::new(t.trim())))),
    }
}

/// Reads `[basiccredentials]` from the SDK's INI profile, and whether the project id is the
/// file's own (else the environment's, if any). A missing file is not an error.
fn from_profile(
    path: &Path,
    env_project_id: Option<String>,
) -> Result<Option<(Credentials, bool)>, CredentialsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(CredentialsError::ProfileFile {
                path: path.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    let section = ini_section(&text, PROFILE_SECTION);
    let get = |key: &str| {
        section
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.to_string())
            .filter(|v| !v.is_empty())
    };
    match (get("ak"), get("sk")) {
        (Some(ak), Some(sk)) => {
            let own_project_id = get("project_id");
            let from_file = own_project_id.is_some();
            Ok(Some((
                Credentials::AkSk {
                    access_key: Secret::new(ak),
                    secret_key: Secret::new(sk),
                    security_token: get("security_token").map(Secret::new),
                    project_id: own_project_id.or(env_project_id),
                },
                from_file,
            )))
        }
        (Some(_), None) => Err(CredentialsError::IncompleteProfile {
            path: path.to_owned(),
            present: "ak",
            missing: "sk",
        }),
        (None, Some(_)) => Err(CredentialsError::IncompleteProfile {
            path: path.to_owned(),
            present: "sk",
            missing: "ak",
        }),
        (None, None) => Ok(None),
    }
}

/// The `key = value` pairs of one INI section (`;`/`#` comments, whole-line or after a space,
/// as Python's configparser reads the SDK's file; `=` or `:` separators).
fn ini_section<'t>(text: &'t str, wanted: &str) -> Vec<(&'t str, &'t str)> {
    let mut in_section = false;
    let mut pairs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name.trim().eq_ignore_ascii_case(wanted);
            continue;
        }
        if in_section && let Some((key, value)) = line.split_once(['=', ':']) {
            pairs.push((key.trim(), strip_inline_comment(value).trim()));
        }
    }
    pairs
}

/// `value ; comment` or `value # comment` is `value`; a `;` or `#` inside a value stays.
fn strip_inline_comment(value: &str) -> &str {
    let bytes = value.as_bytes();
    let start = (1..bytes.len())
        .find(|&i| matches!(bytes[i], b';' | b'#') && bytes[i - 1].is_ascii_whitespace());
    start.map_or(value, |i| &value[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inline_comment_is_not_part_of_the_value() {
        let text =
            "[basiccredentials]\nak = AK1 ; the key\nproject_id = p1\t# optional\nsk = a;b#c\n";
        assert_eq!(
            ini_section(text, "basiccredentials"),
            [("ak", "AK1"), ("project_id", "p1"), ("sk", "a;b#c")]
        );
    }

    fn sources(vars: &[(&str, &str)], profile: Option<PathBuf>) -> CredentialSources {
        let env = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut s = CredentialSources::from_map(None, env);
        s.profile_file = profile;
        s
    }

    fn aksk(ak: &str, sk: &str, token: Option<&str>, project: Option<&str>) -> Credentials {
        Credentials::AkSk {
            access_key: Secret::new(ak),
            secret_key: Secret::new(sk),
            security_token: token.map(Secret::new),
            project_id: project.map(str::to_owned),
        }
    }

    #[test]
    fn resolution_order_table() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("credentials");
        std::fs::write(
            &profile,
            "[other]\nak = NO\n\n[basiccredentials]\nak = PAK\nsk = PSK\n# comment\nproject_id = pp\nsecurity_token = PST\n",
        )
        .unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "  TOKFILE\n").unwrap();
        let missing = dir.path().join("absent");

        struct Case {
            name: &'static str,
            token_file: bool,
            vars: &'static [(&'static str, &'static str)],
            profile: bool,
            expected: Credentials,
        }
        let full_env: &[(&str, &str)] = &[
            (ENV_AK, "EAK"),
            (ENV_SK, "ESK"),
            (ENV_SECURITY_TOKEN, "EST"),
            (ENV_PROJECT_ID, "ep"),
            (ENV_TOKEN, "OSTOK"),
        ];
        let cases = [
            Case {
                name: "token file beats everything",
                token_file: true,
                vars: full_env,
                profile: true,
                expected: Credentials::Token(Secret::new("TOKFILE")),
            },
            Case {
                name: "environment AK/SK beats OS_AUTH_TOKEN and the profile",
                token_file: false,
                vars: full_env,
                profile: true,
                expected: aksk("EAK", "ESK", Some("EST"), Some("ep")),
            },
            Case {
                name: "aliases are read",
                token_file: false,
                vars: &[(ENV_AK_ALIAS, "AAK"), (ENV_SK_ALIAS, "ASK")],
                profile: true,
                expected: aksk("AAK", "ASK", None, None),
            },
            Case {
                name: "the SDK's names beat the aliases",
                token_file: false,
                vars: &[
                    (ENV_AK_ALIAS, "AAK"),
                    (ENV_SK_ALIAS, "ASK"),
                    (ENV_AK, "EAK"),
                    (ENV_SK, "ESK"),
                ],
                profile: false,
                expected: aksk("EAK", "ESK", None, None),
            },
            Case {
                name: "OS_AUTH_TOKEN beats the profile",
                token_file: false,
                vars: &[(ENV_TOKEN, "OSTOK"), (ENV_AK, "")],
                profile: true,
                expected: Credentials::Token(Secret::new("OSTOK")),
            },
            Case {
                name: "profile last",
                token_file: false,
                vars: &[],
                profile: true,
                expected: aksk("PAK", "PSK", Some("PST"), Some("pp")),
            },
        ];
        for case in cases {
            let mut s = sources(
                case.vars,
                Some(if case.profile {
                    profile.clone()
                } else {
                    missing.clone()
                }),
            );
            if case.token_file {
                s.token_file = Some(token_file.clone());
            }
            assert_eq!(resolve(&s).unwrap(), case.expected, "{}", case.name);
        }
    }

    #[test]
    fn profile_without_project_id_takes_the_environments() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("credentials");
        std::fs::write(&profile, "[basiccredentials]\nak=PAK\nsk=PSK\n").unwrap();
        let s = sources(&[(ENV_PROJECT_ID, "ep")], Some(profile));
        assert_eq!(resolve(&s).unwrap(), aksk("PAK", "PSK", None, Some("ep")));
        assert_eq!(
            resolve_with_origin(&s).unwrap().1,
            Some(ProjectIdOrigin::Environment)
        );
    }

    #[test]
    fn the_project_ids_origin_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("credentials");
        std::fs::write(
            &profile,
            "[basiccredentials]\nak=PAK\nsk=PSK\nproject_id=pp\n",
        )
        .unwrap();
        let origin = |vars: &[(&str, &str)]| {
            resolve_with_origin(&sources(vars, Some(profile.clone())))
                .unwrap()
                .1
        };
        assert_eq!(
            origin(&[(ENV_PROJECT_ID, "ep")]),
            Some(ProjectIdOrigin::ProfileFile)
        );
        assert_eq!(
            origin(&[(ENV_AK, "EAK"), (ENV_SK, "ESK"), (ENV_PROJECT_ID, "ep")]),
            Some(ProjectIdOrigin::Environment)
        );
        assert_eq!(origin(&[(ENV_AK, "EAK"), (ENV_SK, "ESK")]), None);
        assert_eq!(origin(&[(ENV_TOKEN, "T")]), None);
    }

    #[test]
    fn default_profile_lives_under_home() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".huaweicloud")).unwrap();
        std::fs::write(
            dir.path().join(".huaweicloud/credentials"),
            "[basiccredentials]\nak=HAK\nsk=HSK\n",
        )
        .unwrap();
        let s = sources(&[("HOME", dir.path().to_str().unwrap())], None);
        assert_eq!(resolve(&s).unwrap(), aksk("HAK", "HSK", None, None));
    }

    #[test]
    fn no_credentials_names_every_source() {
        let dir = tempfile::tempdir().unwrap();
        let s = sources(&[], Some(dir.path().join("nothing-here")));
        let message = resolve(&s).unwrap_err().to_string();
        for needle in [
            "--token-file",
            ENV_AK,
            ENV_SK,
            ENV_AK_ALIAS,
            ENV_SK_ALIAS,
            ENV_TOKEN,
            "nothing-here",
            "[basiccredentials]",
        ] {
            assert!(message.contains(needle), "{needle} missing from: {message}");
        }
    }

    #[test]
    fn half_a_key_pair_is_an_error_not_a_fallthrough() {
        let dir = tempfile::tempdir().unwrap();
        let s = sources(&[(ENV_AK, "EAK"), (ENV_TOKEN, "T")], None);
        assert_eq!(
            resolve(&s).unwrap_err(),
            CredentialsError::IncompleteEnvironment {
                present: ENV_AK,
                missing: ENV_SK
            }
        );
        let profile = dir.path().join("credentials");
        std::fs::write(&profile, "[basiccredentials]\nsk=PSK\n").unwrap();
        let s = sources(&[], Some(profile));
        assert!(matches!(
            resolve(&s).unwrap_err(),
            CredentialsError::IncompleteProfile { present: "sk", .. }
        ));
    }

    #[test]
    fn unreadable_or_empty_token_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sources(&[(ENV_AK, "EAK"), (ENV_SK, "ESK")], None);
        s.token_file = Some(dir.path().join("absent"));
        assert!(matches!(
            resolve(&s).unwrap_err(),
            CredentialsError::TokenFile { .. }
        ));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        s.token_file = Some(empty);
        assert!(matches!(
            resolve(&s).unwrap_err(),
            CredentialsError::EmptyTokenFile { .. }
        ));
    }

    #[test]
    fn debug_prints_no_secret() {
        let creds = aksk(
            "AKSECRETVALUE",
            "SKSECRETVALUE",
            Some("STSECRETVALUE"),
            Some("proj"),
        );
        let token = Credentials::Token(Secret::new("TOKENSECRETVALUE"));
        let printed = format!("{creds:?} {creds:#?} {token:?}");
        assert!(!printed.contains("SECRETVALUE"), "{printed}");
        assert!(printed.contains("proj"));
    }
}
