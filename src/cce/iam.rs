//! Project id discovery as the official SDKs do it: with AK/SK and no project id for a region,
//! IAM is asked `GET /v3/projects?name=<region>`; which IAM endpoint, how its answer is judged,
//! the per-run cache, and where each cluster's project id came from.
//!
//! The SDKs' code this follows: Go `core/auth/basic_credentials.go` (`ProcessAuthParams`),
//! `core/auth/base_credentials.go` (`selectIamEndpoint`), `core/auth/internal/iam_helper.go`
//! (`GetIamEndpointById`, `KeystoneListProjects`, `handleErrAndGetRespData`) and
//! `core/auth/internal/iam_endpoint.go` (the region table); Python
//! `huaweicloudsdkcore/auth/credentials.py` (`BasicCredentials.process_auth_params`) and
//! `huaweicloudsdkcore/auth/internal.py` (`IamHelper`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use sha2::Digest as _;

use crate::cce::credentials::{Credentials, ProjectIdOrigin};

/// Overrides the IAM endpoint of every region, as in the SDKs.
pub const ENV_IAM_ENDPOINT: &str = "HUAWEICLOUD_SDK_IAM_ENDPOINT";
/// The SDKs' IAM endpoint for a region their table does not list.
pub const GLOBAL_IAM_ENDPOINT: &str = "https://iam.myhuaweicloud.com";
/// KeystoneListProjects.
pub const PROJECTS_PATH: &str = "/v3/projects";
/// The header IAM's answers carry their trace id in; the SDKs quote it in their errors.
pub const TRACE_ID_HEADER: &str = "X-IAM-Trace-Id";

/// The regions of the Go SDK's IAM endpoint table (`core/auth/internal/iam_endpoint.go`), each
/// `https://iam.<region>.myhuaweicloud.com`. Any other region falls back to
/// [`GLOBAL_IAM_ENDPOINT`], as the SDK's does.
pub const SDK_IAM_REGIONS: &[&str] = &[
    "cn-north-2",
    "cn-north-4",
    "cn-north-1",
    "cn-east-2",
    "cn-east-3",
    "cn-south-1",
    "cn-south-2",
    "cn-southwest-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "af-south-1",
    "sa-brazil-1",
    "la-south-2",
    "na-mexico-1",
    "la-north-2",
    "cn-north-9",
    "eu-west-0",
    "my-kualalumpur-1",
    "ru-moscow-1",
    "me-east-1",
    "ap-southeast-4",
    "ae-ad-1",
    "cn-east-4",
    "cn-east-5",
    "tr-west-1",
    "cn-north-12",
];

/// Where an IAM endpoint was chosen from, most specific first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IamEndpointFrom {
    /// `--iam-endpoint`.
    Flag,
    /// The cluster's `iam_endpoint`, else `target.iam_endpoint`.
    Plan,
    /// `HUAWEICLOUD_SDK_IAM_ENDPOINT`.
    Environment,
    /// The SDKs' table of regions.
    Region,
}

/// The IAM endpoint to ask for `region`'s project id, and where it came from: `--iam-endpoint`,
/// then the plan's (`iam_endpoint` of the cluster, else of `target`), then
/// `HUAWEICLOUD_SDK_IAM_ENDPOINT` (`https://` put in front when it names no scheme, as the
/// Go SDK does), then the SDKs' table. The SDKs too let an endpoint set in code win over the
/// environment variable. No trailing `/`.
pub fn choose_iam_endpoint(
    flag: Option<&str>,
    plan: Option<&str>,
    environment: Option<&str>,
    region: &str,
) -> (String, IamEndpointFrom) {
    fn given(value: Option<&str>) -> Option<&str> {
        value.map(str::trim).filter(|v| !v.is_empty())
    }
    let (endpoint, from) = if let Some(url) = given(flag) {
        (url.to_owned(), IamEndpointFrom::Flag)
    } else if let Some(url) = given(plan) {
        (url.to_owned(), IamEndpointFrom::Plan)
    } else if let Some(url) = given(environment) {
        let url = if url.contains("://") {
            url.to_owned()
        } else {
            format!("https://{url}")
        };
        (url, IamEndpointFrom::Environment)
    } else {
        (region_iam_endpoint(region), IamEndpointFrom::Region)
    };
    (endpoint.trim_end_matches('/').to_owned(), from)
}

/// The SDKs' IAM endpoint of `region`.
pub fn region_iam_endpoint(region: &str) -> String {
    if SDK_IAM_REGIONS.contains(&region) {
        format!("https://iam.{region}.myhuaweicloud.com")
    } else {
        GLOBAL_IAM_ENDPOINT.to_owned()
    }
}

/// Whether requests made with `credentials` need a project id found through IAM: AK/SK that
/// carry none. A token is scoped already.
pub fn needs_discovery(credentials: &Credentials) -> bool {
    matches!(
        credentials,
        Credentials::AkSk {
            project_id: None,
            ..
        }
    )
}

/// IAM's answer to `GET /v3/projects?name=…`, as it came.
#[derive(Clone, Debug, Default)]
pub struct ProjectsAnswer {
    pub status: u16,
    pub body: Vec<u8>,
    /// `X-IAM-Trace-Id`.
    pub trace_id: Option<String>,
    /// `X-Request-Id`.
    pub request_id: Option<String>,
}

/// Why IAM's answer gives no project id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiscoveryProblem {
    /// `projects` is empty.
    NoProject,
    /// `projects` lists more than one: their ids.
    Several(Vec<String>),
    /// An HTTP error status, with what the body says (read as the core SDK's handler reads it).
    Refused {
        status: u16,
        code: Option<String>,
        message: Option<String>,
        request_id: Option<String>,
    },
    /// A 2xx answer that is not the documented shape.
    Unreadable(String),
    /// No answer: the request could not be sent, or the connection failed.
    NoAnswer(String),
}

/// A region's project id could not be found through IAM. Nothing was sent to the release API.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct DiscoveryError {
    pub region: String,
    pub iam_endpoint: String,
    pub problem: DiscoveryProblem,
    pub trace_id: Option<String>,
}

/// How the user sets a project id instead, in every message that asks for one.
const SET_IT: &str = "set the project id: `project_id` in the plan (under `target` or the \
                      cluster), HUAWEICLOUD_SDK_PROJECT_ID, or `project_id` in the profile file";

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the project id of region `{}` could not be found through IAM ({}{}): ",
            self.region, self.iam_endpoint, PROJECTS_PATH
        )?;
        match &self.problem {
            DiscoveryProblem::NoProject => write!(
                f,
                "IAM knows no project named `{}`; check that it exists in your account, or {SET_IT}",
                self.region
            )?,
            DiscoveryProblem::Several(ids) => write!(
                f,
                "IAM lists several projects named `{}`: {}; choose one and {SET_IT}",
                self.region,
                ids.join(", ")
            )?,
            DiscoveryProblem::Refused {
                status,
                code,
                message,
                request_id,
            } => {
                write!(f, "HTTP {status}")?;
                if let Some(code) = code {
                    write!(f, " {code}")?;
                }
                if let Some(message) = message {
                    write!(f, ": {message}")?;
                }
                if let Some(id) = request_id {
                    write!(f, " (request id {id})")?;
                }
                if matches!(status, 401 | 403) {
                    write!(
                        f,
                        "; the credentials were refused or may not list projects: check them, or {SET_IT}"
                    )?;
                } else {
                    write!(f, "; {SET_IT}")?;
                }
            }
            DiscoveryProblem::Unreadable(why) => {
                write!(f, "its answer is not a project list ({why}); {SET_IT}")?;
            }
            DiscoveryProblem::NoAnswer(why) => write!(f, "{why}; {SET_IT}")?,
        }
        if let Some(trace) = &self.trace_id {
            write!(f, " ({TRACE_ID_HEADER}={trace})")?;
        }
        Ok(())
    }
}

/// The project id in IAM's answer: exactly one project, its `id`. The SDKs read the answer
/// into `{"projects": [{"id", "name"}]}`; none or several is an error, as theirs is.
pub fn judge_projects_answer(answer: &ProjectsAnswer) -> Result<String, DiscoveryProblem> {
    if !(200..300).contains(&answer.status) {
        // IAM's errors meet the core SDK's default handler (`{"error": {"code", "message"}}`).
        let read = super::error::read_as_core_handler(answer.status, &answer.body);
        return Err(DiscoveryProblem::Refused {
            status: answer.status,
            code: read.code,
            message: read.message,
            request_id: answer.request_id.clone(),
        });
    }
    let unreadable = |why: &str| DiscoveryProblem::Unreadable(why.to_owned());
    let parsed: serde_json::Value =
        serde_json::from_slice(&answer.body).map_err(|_| unreadable("not JSON"))?;
    let projects = match parsed.get("projects") {
        Some(serde_json::Value::Array(projects)) => projects,
        Some(serde_json::Value::Null) | None => return Err(unreadable("no `projects`")),
        Some(_) => return Err(unreadable("`projects` is not a list")),
    };
    let ids = projects
        .iter()
        .map(|project| match project.get("id") {
            Some(serde_json::Value::String(id)) if !id.trim().is_empty() => {
                Ok(id.trim().to_owned())
            }
            _ => Err(unreadable("a project without an `id`")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    match <[String; 1]>::try_from(ids) {
        Ok([id]) => Ok(id),
        Err(ids) if ids.is_empty() => Err(DiscoveryProblem::NoProject),
        Err(ids) => Err(DiscoveryProblem::Several(ids)),
    }
}

/// The key of the per-run cache: the access key and the region, as the SDKs key theirs
/// (`AK + region`); the IAM endpoint is not part of it, as it is not of theirs. The access key
/// is kept as its SHA-256, so that no printout of a key can show it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CacheKey {
    access_key_sha256: [u8; 32],
    region: String,
}

impl CacheKey {
    /// `None` for credentials that need no discovery.
    pub fn of(credentials: &Credentials, region: &str) -> Option<CacheKey> {
        match credentials {
            Credentials::AkSk { access_key, .. } => Some(CacheKey {
                access_key_sha256: sha2::Sha256::digest(access_key.expose().as_bytes()).into(),
                region: region.to_owned(),
            }),
            Credentials::Token(_) => None,
        }
    }
}

/// Project ids found through IAM in this run, by [`CacheKey`]: each region is asked once.
#[derive(Debug, Default)]
pub struct ProjectIdCache(Mutex<HashMap<CacheKey, String>>);

impl ProjectIdCache {
    pub fn get(&self, key: &CacheKey) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    pub fn put(&self, key: CacheKey, project_id: String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, project_id);
    }
}

/// Where a cluster's project id comes from, as `flotilla plan` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProjectIdSource {
    /// The plan's `project_id` (the cluster's, else `target`'s).
    Plan,
    /// `HUAWEICLOUD_SDK_PROJECT_ID`.
    Environment,
    /// `project_id` in the profile file.
    ProfileFile,
    /// Found through IAM in this run.
    Iam,
    /// Will be found through IAM when a command that sends requests runs: `flotilla plan`
    /// alone sends nothing, so it did not ask.
    IamWhenSending,
    /// An IAM token needs none.
    NotNeeded,
    /// No credentials were found, so it cannot be told.
    Unknown,
}

impl ProjectIdSource {
    /// The word in `flotilla plan --format json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectIdSource::Plan => "plan",
            ProjectIdSource::Environment => "environment",
            ProjectIdSource::ProfileFile => "credentials",
            ProjectIdSource::Iam => "iam",
            ProjectIdSource::IamWhenSending => "iam_when_sending",
            ProjectIdSource::NotNeeded => "not_needed",
            ProjectIdSource::Unknown => "unknown",
        }
    }

    /// Where it comes from, for people.
    pub fn describe(self) -> &'static str {
        match self {
            ProjectIdSource::Plan => "the plan",
            ProjectIdSource::Environment => "the environment (HUAWEICLOUD_SDK_PROJECT_ID)",
            ProjectIdSource::ProfileFile => "the credentials (project_id in the profile file)",
            ProjectIdSource::Iam => "IAM",
            ProjectIdSource::IamWhenSending => {
                "IAM, asked by apply and plan --diff (plan alone sends nothing)"
            }
            ProjectIdSource::NotNeeded => "none needed: the IAM token is scoped already",
            ProjectIdSource::Unknown => {
                "not known yet: no credentials found (with AK/SK and no project id, IAM is asked)"
            }
        }
    }
}

/// Where a cluster's project id comes from: the plan's wins, then the credentials' (from the
/// environment or the profile file), then IAM's (`discovered`: asked in this run).
/// `credentials` is `None` when none were found.
pub fn project_id_source(
    in_plan: bool,
    credentials: Option<(&Credentials, Option<ProjectIdOrigin>)>,
    discovered: bool,
) -> ProjectIdSource {
    if in_plan {
        return ProjectIdSource::Plan;
    }
    match credentials {
        None => ProjectIdSource::Unknown,
        Some((Credentials::Token(_), _)) => ProjectIdSource::NotNeeded,
        Some((_, Some(ProjectIdOrigin::Environment))) => ProjectIdSource::Environment,
        Some((_, Some(ProjectIdOrigin::ProfileFile))) => ProjectIdSource::ProfileFile,
        Some((_, None)) if discovered => ProjectIdSource::Iam,
        Some((_, None)) => ProjectIdSource::IamWhenSending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn answer(status: u16, body: &str) -> ProjectsAnswer {
        ProjectsAnswer {
            status,
            body: body.as_bytes().to_vec(),
            trace_id: Some("trace-1".into()),
            request_id: Some("req-1".into()),
        }
    }

    #[test]
    fn the_iam_endpoint_is_chosen_flag_plan_environment_then_region() {
        let choose = |flag, plan, env, region| choose_iam_endpoint(flag, plan, env, region);
        assert_eq!(
            choose(
                Some("https://f.example/"),
                Some("https://p.example"),
                Some("e.example"),
                "cn-north-4"
            ),
            ("https://f.example".to_owned(), IamEndpointFrom::Flag)
        );
        assert_eq!(
            choose(
                None,
                Some("https://p.example"),
                Some("e.example"),
                "cn-north-4"
            ),
            ("https://p.example".to_owned(), IamEndpointFrom::Plan)
        );
        assert_eq!(
            choose(None, None, Some("e.example"), "cn-north-4"),
            ("https://e.example".to_owned(), IamEndpointFrom::Environment),
            "the SDK puts https:// in front of a bare host"
        );
        assert_eq!(
            choose(None, None, Some("http://127.0.0.1:9/"), "cn-north-4").0,
            "http://127.0.0.1:9"
        );
        assert_eq!(
            choose(None, Some(""), Some("  "), "cn-north-4"),
            (
                "https://iam.cn-north-4.myhuaweicloud.com".to_owned(),
                IamEndpointFrom::Region
            )
        );
        assert_eq!(
            choose(None, None, None, "eu-west-101").0,
            GLOBAL_IAM_ENDPOINT,
            "a region the SDKs' table lacks goes to the global endpoint, as theirs does"
        );
    }

    #[test]
    fn one_project_is_its_id() {
        let one = answer(
            200,
            r#"{"projects":[{"id":"0a1b","name":"cn-north-4","domain_id":"d","enabled":true}],"links":{"self":"x"}}"#,
        );
        assert_eq!(judge_projects_answer(&one), Ok("0a1b".to_owned()));
    }

    #[test]
    fn none_several_and_wrong_shapes_are_problems() {
        let judge = |status, body| judge_projects_answer(&answer(status, body));
        assert_eq!(
            judge(200, r#"{"projects":[]}"#),
            Err(DiscoveryProblem::NoProject)
        );
        assert_eq!(
            judge(200, r#"{"projects":[{"id":"a"},{"id":"b"}]}"#),
            Err(DiscoveryProblem::Several(vec!["a".into(), "b".into()]))
        );
        for (body, why) in [
            ("<html>gateway</html>", "not JSON"),
            (r#"{"links":{}}"#, "no `projects`"),
            (r#"{"projects":null}"#, "no `projects`"),
            (r#"{"projects":{"id":"a"}}"#, "`projects` is not a list"),
            (
                r#"{"projects":[{"name":"cn-north-4"}]}"#,
                "a project without an `id`",
            ),
        ] {
            assert_eq!(
                judge(200, body),
                Err(DiscoveryProblem::Unreadable(why.to_owned())),
                "{body}"
            );
        }
    }

    #[test]
    fn an_error_answer_is_read_as_the_core_handler_reads_it() {
        let refused =
            |status, body: &str| judge_projects_answer(&answer(status, body)).unwrap_err();
        assert_eq!(
            refused(
                401,
                r#"{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}"#
            ),
            DiscoveryProblem::Refused {
                status: 401,
                code: Some("401".into()),
                message: Some("The request you have made requires authentication.".into()),
                request_id: Some("req-1".into()),
            }
        );
        assert_eq!(
            refused(403, r#"{"error_code":"IAM.0002","error_msg":"no"}"#),
            DiscoveryProblem::Refused {
                status: 403,
                code: Some("IAM.0002".into()),
                message: Some("no".into()),
                request_id: Some("req-1".into()),
            }
        );
        assert_eq!(
            refused(502, "Bad   Gateway\n"),
            DiscoveryProblem::Refused {
                status: 502,
                code: Some("502".into()),
                message: Some("Bad Gateway".into()),
                request_id: Some("req-1".into()),
            }
        );
    }

    #[test]
    fn the_error_names_the_region_the_endpoint_the_ids_and_the_trace() {
        let error = |problem| DiscoveryError {
            region: "cn-north-4".into(),
            iam_endpoint: "https://iam.cn-north-4.myhuaweicloud.com".into(),
            problem,
            trace_id: Some("trace-9".into()),
        };
        let several = error(DiscoveryProblem::Several(vec!["p1".into(), "p2".into()])).to_string();
        for needle in [
            "cn-north-4",
            "https://iam.cn-north-4.myhuaweicloud.com/v3/projects",
            "p1, p2",
            "X-IAM-Trace-Id=trace-9",
            "HUAWEICLOUD_SDK_PROJECT_ID",
        ] {
            assert!(several.contains(needle), "{needle}: {several}");
        }
        let none = error(DiscoveryProblem::NoProject).to_string();
        assert!(none.contains("no project named `cn-north-4`"), "{none}");
    }

    #[test]
    fn the_cache_is_keyed_by_access_key_and_region() {
        let aksk = |ak: &str| Credentials::AkSk {
            access_key: Secret::new(ak),
            secret_key: Secret::new("sk"),
            security_token: None,
            project_id: None,
        };
        let cache = ProjectIdCache::default();
        let key = CacheKey::of(&aksk("AK1"), "cn-north-4").unwrap();
        cache.put(key.clone(), "p1".into());
        assert_eq!(cache.get(&key), Some("p1".into()));
        assert_eq!(
            cache.get(&CacheKey::of(&aksk("AK1"), "cn-east-3").unwrap()),
            None
        );
        assert_eq!(
            cache.get(&CacheKey::of(&aksk("AK2"), "cn-north-4").unwrap()),
            None
        );
        assert_eq!(
            CacheKey::of(&Credentials::Token(Secret::new("t")), "r"),
            None
        );
        assert!(!format!("{key:?}").contains("AK1"), "{key:?}");
    }

    #[test]
    fn only_aksk_without_a_project_id_needs_discovery() {
        let aksk = |project: Option<&str>| Credentials::AkSk {
            access_key: Secret::new("a"),
            secret_key: Secret::new("s"),
            security_token: None,
            project_id: project.map(str::to_owned),
        };
        assert!(needs_discovery(&aksk(None)));
        assert!(!needs_discovery(&aksk(Some("p"))));
        assert!(!needs_discovery(&Credentials::Token(Secret::new("t"))));
    }

    #[test]
    fn the_source_of_a_project_id() {
        let aksk = Credentials::AkSk {
            access_key: Secret::new("a"),
            secret_key: Secret::new("s"),
            security_token: None,
            project_id: None,
        };
        let token = Credentials::Token(Secret::new("t"));
        use ProjectIdSource as S;
        assert_eq!(project_id_source(true, None, false), S::Plan);
        assert_eq!(project_id_source(false, None, false), S::Unknown);
        assert_eq!(
            project_id_source(false, Some((&token, None)), false),
            S::NotNeeded
        );
        assert_eq!(
            project_id_source(
                false,
                Some((&aksk, Some(ProjectIdOrigin::Environment))),
                false
            ),
            S::Environment
        );
        assert_eq!(
            project_id_source(
                false,
                Some((&aksk, Some(ProjectIdOrigin::ProfileFile))),
                false
            ),
            S::ProfileFile
        );
        assert_eq!(project_id_source(false, Some((&aksk, None)), true), S::Iam);
        assert_eq!(
            project_id_source(false, Some((&aksk, None)), false),
            S::IamWhenSending
        );
    }
}
