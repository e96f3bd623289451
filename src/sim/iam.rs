//! The simulator's IAM: `GET /v3/projects?name=<region>` answered from `--project REGION=ID`
//! in IAM's own shapes (`{"projects": [...], "links": ...}`, errors as
//! `{"error": {"code", "message", "title"}}`, every answer with `X-IAM-Trace-Id`), and the
//! wrong answers tests ask for.

use serde_json::json;

/// One project IAM knows: `flotilla sim --project REGION=ID`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimProject {
    pub region: String,
    pub id: String,
}

/// `REGION=ID`, both non-empty, as `--project` takes it.
pub fn parse_project(text: &str) -> Result<SimProject, String> {
    let (region, id) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected REGION=ID, e.g. cn-north-4=0a1b2c3d"))?;
    let (region, id) = (region.trim(), id.trim());
    if region.is_empty() || id.is_empty() {
        return Err(format!("`{text}`: expected REGION=ID, both non-empty"));
    }
    Ok(SimProject {
        region: region.to_owned(),
        id: id.to_owned(),
    })
}

/// A wrong answer IAM gives instead of the project list, for tests of what flotilla does then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IamFault {
    /// 200 with a body that is not JSON.
    NotJson,
    /// 200 with a JSON object without `projects`.
    NoProjects,
    /// This error status, in IAM's error shape.
    Status(u16),
}

/// An answer of the simulator's IAM: its status and body (the server adds the trace id).
pub(crate) struct IamAnswer {
    pub status: u16,
    pub body: String,
}

/// IAM's error body: `{"error": {"code", "message", "title"}}`.
pub(crate) fn iam_error(status: u16, message: &str) -> IamAnswer {
    let title = match status {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Error",
    };
    IamAnswer {
        status,
        body: json!({"error": {"code": status, "message": message, "title": title}}).to_string(),
    }
}

/// The answer to `GET /v3/projects` with query `pairs`: the projects named by `name` (every
/// project without it), or the wrong answer `fault` asks for.
pub(crate) fn list_projects(
    projects: &[SimProject],
    fault: Option<IamFault>,
    pairs: &[(String, String)],
    base_url: &str,
) -> IamAnswer {
    match fault {
        Some(IamFault::NotJson) => {
            return IamAnswer {
                status: 200,
                body: "<html><body>IAM is down for maintenance</body></html>".to_owned(),
            };
        }
        Some(IamFault::NoProjects) => {
            return IamAnswer {
                status: 200,
                body: json!({"links": {"self": format!("{base_url}/v3/projects")}}).to_string(),
            };
        }
        Some(IamFault::Status(status)) => {
            return iam_error(
                status,
                "You are not authorized to perform the requested action.",
            );
        }
        None => {}
    }
    let name = pairs
        .iter()
        .find(|(key, _)| key == "name")
        .map(|(_, v)| v.as_str());
    let listed: Vec<serde_json::Value> = projects
        .iter()
        .filter(|p| name.is_none_or(|n| n == p.region))
        .map(|p| {
            json!({
                "id": p.id,
                "name": p.region,
                "description": "",
                "domain_id": "0123456789abcdef0123456789abcdef",
                "enabled": true,
                "is_domain": false,
                "parent_id": "0123456789abcdef0123456789abcdef",
                "links": {"self": format!("{base_url}/v3/projects/{}", p.id)},
            })
        })
        .collect();
    IamAnswer {
        status: 200,
        body: json!({
            "projects": listed,
            "links": {"self": format!("{base_url}/v3/projects"), "previous": null, "next": null},
        })
        .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn projects() -> Vec<SimProject> {
        ["cn-north-4=p1", "cn-east-3=p2", "cn-east-3=p3"]
            .iter()
            .map(|t| parse_project(t).unwrap())
            .collect()
    }

    fn ids(answer: &IamAnswer) -> Vec<String> {
        let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
        body["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn projects_are_listed_by_name() {
        let name = |region: &str| vec![("name".to_owned(), region.to_owned())];
        assert_eq!(
            ids(&list_projects(
                &projects(),
                None,
                &name("cn-north-4"),
                "http://x"
            )),
            ["p1"]
        );
        assert_eq!(
            ids(&list_projects(
                &projects(),
                None,
                &name("cn-east-3"),
                "http://x"
            )),
            ["p2", "p3"]
        );
        assert!(
            ids(&list_projects(
                &projects(),
                None,
                &name("eu-west-0"),
                "http://x"
            ))
            .is_empty()
        );
    }

    #[test]
    fn wrong_answers_on_demand() {
        let none: &[(String, String)] = &[];
        let not_json = list_projects(&projects(), Some(IamFault::NotJson), none, "http://x");
        assert!(serde_json::from_str::<serde_json::Value>(&not_json.body).is_err());
        let no_projects = list_projects(&projects(), Some(IamFault::NoProjects), none, "http://x");
        assert!(!no_projects.body.contains("projects\":"));
        let forbidden = list_projects(&projects(), Some(IamFault::Status(403)), none, "http://x");
        assert_eq!(forbidden.status, 403);
        assert!(
            forbidden.body.contains(r#""error":{"#),
            "{}",
            forbidden.body
        );
    }

    #[test]
    fn a_project_flag_needs_both_halves() {
        assert!(parse_project("cn-north-4").is_err());
        assert!(parse_project("=p").is_err());
        assert!(parse_project("cn-north-4=").is_err());
        assert_eq!(
            parse_project(" cn-north-4 = p1 ").unwrap(),
            SimProject {
                region: "cn-north-4".into(),
                id: "p1".into()
            }
        );
    }
}
