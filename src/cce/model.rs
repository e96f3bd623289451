//! The API's request and response shapes, as the official SDK models them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// What a PUT asks the service to do with a release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Upgrade,
    Rollback,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Upgrade => "upgrade",
            Action::Rollback => "rollback",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `ReleaseReqBodyParams`: every field optional, absent ones are not sent.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_hooks: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recreate: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_values: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_hooks: Option<bool>,
}

/// `UpdateReleaseReqBody`, fields in the order the SDK sends them; what the plan leaves unset is not sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateReleaseBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_id: Option<String>,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<ReleaseParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Map<String, Value>>,
}

/// A release's `status`: the eight documented states, and whatever a newer service may add.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ReleaseStatus {
    Deployed,
    Deleted,
    Failed,
    Deleting,
    PendingInstall,
    PendingUpgrade,
    PendingRollback,
    Unknown,
    Other(String),
}

impl ReleaseStatus {
    pub fn as_str(&self) -> &str {
        match self {
            ReleaseStatus::Deployed => "DEPLOYED",
            ReleaseStatus::Deleted => "DELETED",
            ReleaseStatus::Failed => "FAILED",
            ReleaseStatus::Deleting => "DELETING",
            ReleaseStatus::PendingInstall => "PENDING_INSTALL",
            ReleaseStatus::PendingUpgrade => "PENDING_UPGRADE",
            ReleaseStatus::PendingRollback => "PENDING_ROLLBACK",
            ReleaseStatus::Unknown => "UNKNOWN",
            ReleaseStatus::Other(other) => other,
        }
    }

    pub fn is_pending(&self) -> bool {
        matches!(
            self,
            ReleaseStatus::PendingInstall
                | ReleaseStatus::PendingUpgrade
                | ReleaseStatus::PendingRollback
        )
    }
}

impl From<&str> for ReleaseStatus {
    fn from(s: &str) -> Self {
        match s {
            "DEPLOYED" => ReleaseStatus::Deployed,
            "DELETED" => ReleaseStatus::Deleted,
            "FAILED" => ReleaseStatus::Failed,
            "DELETING" => ReleaseStatus::Deleting,
            "PENDING_INSTALL" => ReleaseStatus::PendingInstall,
            "PENDING_UPGRADE" => ReleaseStatus::PendingUpgrade,
            "PENDING_ROLLBACK" => ReleaseStatus::PendingRollback,
            "UNKNOWN" => ReleaseStatus::Unknown,
            other => ReleaseStatus::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ReleaseStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ReleaseStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ReleaseStatus::from(s.as_str()))
    }
}

/// The release object of PUT and GET answers and of history and list arrays.
/// Parsed tolerantly: unknown fields are ignored, and `values`, `parameters` and `resources`
/// may come as a JSON-encoded string (as documented) or as an object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Release {
    pub chart_name: String,
    pub chart_public: bool,
    pub chart_version: String,
    pub cluster_id: String,
    pub cluster_name: String,
    pub create_at: String,
    pub description: String,
    pub name: String,
    pub namespace: String,
    #[serde(deserialize_with = "json_or_string")]
    pub parameters: Value,
    #[serde(deserialize_with = "json_or_string")]
    pub resources: Value,
    pub status: Option<ReleaseStatus>,
    pub status_description: String,
    pub update_at: String,
    #[serde(deserialize_with = "json_or_string")]
    pub values: Value,
    pub version: i64,
}

impl Release {
    pub fn status(&self) -> ReleaseStatus {
        self.status
            .clone()
            .unwrap_or(ReleaseStatus::Other(String::new()))
    }
}

/// The chart object of ShowAutopilotChart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Chart {
    pub id: String,
    pub name: String,
    pub version: String,
    pub description: String,
    pub source: String,
    pub icon_url: String,
    pub chart_url: String,
    pub create_at: String,
    pub update_at: String,
    pub public: bool,
    pub values: String,
    pub translate: String,
    pub instruction: String,
}

/// A field documented as a JSON-encoded string that some answers carry as an object: both
/// become a [`Value`]. A string that is not JSON stays a string; `null` or absent is `Null`.
fn json_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(match v {
        Value::String(s) if s.trim().is_empty() => Value::Null,
        Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_keeps_the_sdk_key_order_and_leaves_out_what_is_unset() {
        let mut values = Map::new();
        values.insert("zeta".into(), json!(1));
        values.insert("imageTag".into(), json!("v2"));
        let body = UpdateReleaseBody {
            chart_id: Some("c".into()),
            action: Action::Upgrade,
            parameters: Some(ReleaseParameters {
                release_version: Some(3),
                ..Default::default()
            }),
            values: Some(values),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"chart_id":"c","action":"upgrade","parameters":{"release_version":3},"values":{"zeta":1,"imageTag":"v2"}}"#
        );
        let bare = UpdateReleaseBody {
            chart_id: None,
            action: Action::Rollback,
            parameters: None,
            values: None,
        };
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            r#"{"action":"rollback"}"#
        );
    }

    #[test]
    fn release_accepts_values_as_string_or_object_and_unknown_status() {
        let r: Release = serde_json::from_value(json!({
            "name": "a", "values": "{\"imageTag\":\"v1\"}", "parameters": {"no_hooks": true},
            "status": "SOMETHING_NEW", "version": 4, "extra": [1, 2]
        }))
        .unwrap();
        assert_eq!(r.values, json!({"imageTag": "v1"}));
        assert_eq!(r.parameters, json!({"no_hooks": true}));
        assert_eq!(r.status(), ReleaseStatus::Other("SOMETHING_NEW".into()));
        assert_eq!(r.version, 4);
    }

    #[test]
    fn every_documented_status_round_trips() {
        for s in [
            "DEPLOYED",
            "DELETED",
            "FAILED",
            "DELETING",
            "PENDING_INSTALL",
            "PENDING_UPGRADE",
            "PENDING_ROLLBACK",
            "UNKNOWN",
        ] {
            let status = ReleaseStatus::from(s);
            assert!(!matches!(status, ReleaseStatus::Other(_)), "{s}");
            assert_eq!(status.as_str(), s);
        }
    }
}
