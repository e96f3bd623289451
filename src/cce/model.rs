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

/// The release object of PUT and GET answers and of history and list arrays, read as the SDK
/// models read it: every field optional, `null` the same as missing, unknown fields ignored.
///
/// What each field means when it is not given is decided here and in the engine, and written
/// down in the book (`docs/src/answers.md`): the fields that decide something are `Option`s
/// (`version`, `status`, `chart_name`, `chart_version`, `chart_public`) or `Value::Null`
/// (`values`, `parameters`, `resources`); the ones only shown are empty strings when not given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Release {
    /// `""` counts as not given: an empty chart name names nothing.
    #[serde(deserialize_with = "lenient::opt_name")]
    pub chart_name: Option<String>,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub chart_public: Option<bool>,
    #[serde(deserialize_with = "lenient::opt_name")]
    pub chart_version: Option<String>,
    #[serde(deserialize_with = "lenient::text")]
    pub cluster_id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub cluster_name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub create_at: String,
    #[serde(deserialize_with = "lenient::text")]
    pub description: String,
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub namespace: String,
    /// `Null` when not given.
    #[serde(deserialize_with = "lenient::json_or_string")]
    pub parameters: Value,
    /// `Null` when not given (the service sends it only for `show_resources=true`).
    #[serde(deserialize_with = "lenient::json_or_string")]
    pub resources: Value,
    /// `None` when not given (or `""`); any other text is kept verbatim.
    #[serde(deserialize_with = "lenient::opt_status")]
    pub status: Option<ReleaseStatus>,
    #[serde(deserialize_with = "lenient::text")]
    pub status_description: String,
    #[serde(deserialize_with = "lenient::text")]
    pub update_at: String,
    /// `Null` when not given: then nothing can be said about the release's values.
    #[serde(deserialize_with = "lenient::json_or_string")]
    pub values: Value,
    /// The release revision; `None` when not given or not an integer, and then the answer
    /// proves nothing about which revision the release is at.
    #[serde(deserialize_with = "lenient::opt_revision")]
    pub version: Option<i64>,
}

impl Release {
    /// The status, with a missing one as `Other("")`: neither pending nor settled. Prefer
    /// [`Release::status`] the field where "not given" must be told apart.
    pub fn status(&self) -> ReleaseStatus {
        self.status
            .clone()
            .unwrap_or(ReleaseStatus::Other(String::new()))
    }

    /// The status as shown to people: verbatim, or `(status not given)`.
    pub fn status_text(&self) -> String {
        match &self.status {
            Some(status) => status.to_string(),
            None => NOT_GIVEN_STATUS.to_owned(),
        }
    }

    /// The revision as shown to people: the number, or `(revision not given)`.
    pub fn revision_text(&self) -> String {
        match self.version {
            Some(version) => version.to_string(),
            None => NOT_GIVEN_REVISION.to_owned(),
        }
    }

    /// Whether the answer gave the release's values as an object (an empty one counts): a
    /// `null`, a missing field, `""`, or text that is not a JSON object gives nothing to compare.
    pub fn values_given(&self) -> bool {
        self.values.is_object()
    }
}

/// Reads a successful answer's body as the SDKs do: as JSON first (where a key given twice
/// keeps its last value, as Python's `json.loads` and Go's `json.Unmarshal` keep it), then
/// into `T`, field by field.
pub fn read_answer<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_value(serde_json::from_slice::<Value>(body)?)
}

/// How a missing status is shown.
pub const NOT_GIVEN_STATUS: &str = "(status not given)";
/// How a missing revision is shown.
pub const NOT_GIVEN_REVISION: &str = "(revision not given)";

/// The chart object of ShowAutopilotChart and of ListAutopilotCharts' array, read as the SDK
/// models read it: every field optional, `null` the same as missing (an empty string here).
/// `name` and `version` empty mean "not given", and then the chart cannot be compared.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Chart {
    #[serde(deserialize_with = "lenient::text")]
    pub id: String,
    #[serde(deserialize_with = "lenient::text")]
    pub name: String,
    #[serde(deserialize_with = "lenient::text")]
    pub version: String,
    #[serde(deserialize_with = "lenient::text")]
    pub description: String,
    #[serde(deserialize_with = "lenient::text")]
    pub source: String,
    #[serde(deserialize_with = "lenient::text")]
    pub icon_url: String,
    #[serde(deserialize_with = "lenient::text")]
    pub chart_url: String,
    #[serde(deserialize_with = "lenient::text")]
    pub create_at: String,
    #[serde(deserialize_with = "lenient::text")]
    pub update_at: String,
    #[serde(deserialize_with = "lenient::opt_bool")]
    pub public: Option<bool>,
    /// Documented as a JSON-encoded string; an object is kept as its JSON text.
    #[serde(deserialize_with = "lenient::text")]
    pub values: String,
    #[serde(deserialize_with = "lenient::text")]
    pub translate: String,
    #[serde(deserialize_with = "lenient::text")]
    pub instruction: String,
}

/// Readers for one field each that accept every shape an SDK model accepts (and `null`), so
/// that no field can make a whole answer unreadable.
mod lenient {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    use super::ReleaseStatus;

    /// A scalar as the Python SDK's `str(...)` reads it: numbers and booleans as their text;
    /// an object or array as its JSON text; `null` as not given.
    fn value_text(value: Value) -> Option<String> {
        match value {
            Value::Null => None,
            Value::String(text) => Some(text),
            Value::Bool(flag) => Some(flag.to_string()),
            Value::Number(number) => Some(number.to_string()),
            other => Some(other.to_string()),
        }
    }

    /// A shown-only text: not given is empty.
    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(value_text(Value::deserialize(d)?).unwrap_or_default())
    }

    /// A name that decides something: empty or blank is not given.
    pub fn opt_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(value_text(Value::deserialize(d)?).filter(|text| !text.trim().is_empty()))
    }

    /// A boolean, or its text (`"true"`, `"False"`); anything else is not given.
    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Bool(flag) => Some(flag),
            Value::String(text) if text.trim().eq_ignore_ascii_case("true") => Some(true),
            Value::String(text) if text.trim().eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        })
    }

    /// An integer revision: a JSON integer, a number with no fraction, or the text of an
    /// integer (the Python SDK reads `int("7")`). Anything else is not given: a revision that
    /// cannot be read proves nothing.
    pub fn opt_revision<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(revision_of(&Value::deserialize(d)?))
    }

    pub(super) fn revision_of(value: &Value) -> Option<i64> {
        match value {
            Value::Number(number) => number.as_i64().or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }),
            Value::String(text) => text.trim().parse::<i64>().ok(),
            _ => None,
        }
    }

    /// A status: any text kept verbatim; a number or boolean as its text; `null` or `""` is
    /// not given.
    pub fn opt_status<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ReleaseStatus>, D::Error> {
        Ok(value_text(Value::deserialize(d)?)
            .filter(|text| !text.is_empty())
            .map(|text| ReleaseStatus::from(text.as_str())))
    }

    /// A field documented as a JSON-encoded string that some answers carry as an object: a
    /// string holding a JSON object or array becomes that value, an object or array stays
    /// itself, a blank string or `null` is `Null` (not given), and any other string or scalar
    /// stays as it came.
    pub fn json_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(text) if text.trim().is_empty() => Value::Null,
            Value::String(text) => match serde_json::from_str::<Value>(&text) {
                Ok(parsed @ (Value::Object(_) | Value::Array(_))) => parsed,
                _ => Value::String(text),
            },
            other => other,
        })
    }
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
        assert_eq!(r.version, Some(4));
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

    #[test]
    fn null_and_missing_are_the_same_and_neither_makes_an_answer_unreadable() {
        let nulls: Release = serde_json::from_value(json!({
            "chart_name": null, "chart_public": null, "chart_version": null, "cluster_id": null,
            "cluster_name": null, "create_at": null, "description": null, "name": null,
            "namespace": null, "parameters": null, "resources": null, "status": null,
            "status_description": null, "update_at": null, "values": null, "version": null
        }))
        .unwrap();
        let missing: Release = serde_json::from_value(json!({})).unwrap();
        assert_eq!(nulls, missing);
        assert_eq!(nulls, Release::default());
        assert_eq!(nulls.status_text(), NOT_GIVEN_STATUS);
        assert_eq!(nulls.revision_text(), NOT_GIVEN_REVISION);
        assert!(!nulls.values_given());
        let chart: Chart = serde_json::from_value(json!({
            "id": "c", "name": null, "version": null, "public": null, "values": null
        }))
        .unwrap();
        assert_eq!(
            (chart.id.as_str(), chart.name.as_str(), chart.public),
            ("c", "", None)
        );
    }

    #[test]
    fn each_field_is_read_in_every_shape_an_sdk_model_reads() {
        let r: Release = serde_json::from_value(json!({
            "version": "7", "chart_public": "True", "chart_name": "", "chart_version": 2,
            "status": "SUPERSEDED", "values": "", "parameters": "{\"no_hooks\":true}",
            "resources": {"kind": "Deployment"}, "description": 42, "update_at": false
        }))
        .unwrap();
        assert_eq!(r.version, Some(7));
        assert_eq!(r.chart_public, Some(true));
        assert_eq!(r.chart_name, None, "an empty chart name names nothing");
        assert_eq!(r.chart_version.as_deref(), Some("2"));
        assert_eq!(r.status, Some(ReleaseStatus::Other("SUPERSEDED".into())));
        assert_eq!(r.status_text(), "SUPERSEDED", "shown as it came");
        assert_eq!(r.values, Value::Null, "\"\" gives no values");
        assert_eq!(r.parameters, json!({"no_hooks": true}));
        assert_eq!(r.resources, json!({"kind": "Deployment"}));
        assert_eq!(
            (r.description.as_str(), r.update_at.as_str()),
            ("42", "false")
        );
        for (version, read) in [
            (json!(3), Some(3)),
            (json!(3.0), Some(3)),
            (json!(" 12 "), Some(12)),
            (json!(3.5), None),
            (json!("three"), None),
            (json!(true), None),
            (json!([3]), None),
        ] {
            let r: Release = serde_json::from_value(json!({ "version": version })).unwrap();
            assert_eq!(r.version, read, "{version}");
        }
        for (status, read) in [
            (
                json!("UNINSTALLING"),
                Some(ReleaseStatus::Other("UNINSTALLING".into())),
            ),
            (
                json!("deployed"),
                Some(ReleaseStatus::Other("deployed".into())),
            ),
            (json!(""), None),
            (json!(5), Some(ReleaseStatus::Other("5".into()))),
        ] {
            let r: Release = serde_json::from_value(json!({ "status": status })).unwrap();
            assert_eq!(r.status, read, "{status}");
        }
        // A string that is not a JSON object stays the string it is.
        let r: Release = serde_json::from_value(json!({"values": "imageTag=v1"})).unwrap();
        assert_eq!(r.values, json!("imageTag=v1"));
        let r: Release = serde_json::from_value(json!({"values": "123"})).unwrap();
        assert_eq!(r.values, json!("123"));
    }

    #[test]
    fn a_key_given_twice_keeps_its_last_value_as_the_sdks_read_it() {
        let r: Release =
            read_answer(br#"{"version": 1, "status": "PENDING_UPGRADE", "version": 2}"#).unwrap();
        assert_eq!(
            (r.version, r.status()),
            (Some(2), ReleaseStatus::PendingUpgrade)
        );
        assert!(read_answer::<Release>(b"{not json").is_err());
    }
}
