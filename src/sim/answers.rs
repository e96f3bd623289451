//! How the simulator words a successful answer: release and chart objects as JSON, `resources`
//! only for `show_resources=true`, and `--null-fields`, which leaves optional fields out or
//! `null` at random (seeded), as the SDK models allow.

use std::sync::Mutex;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

use super::store::ReleaseKey;

/// Mixed into `--rng-seed` so that the null-field dice do not share the fault dice's draws:
/// turning `--null-fields` on does not change which faults a run meets.
const NULL_FIELDS_STREAM: u64 = 0x6e75_6c6c_6669_656c;

/// `--null-fields P`: each field of a release or chart object in an answer is, with
/// probability `P`, `null` (half the time) or left out (the other half).
#[derive(Debug)]
pub struct NullFields {
    probability: f64,
    rng: Mutex<ChaCha8Rng>,
}

impl NullFields {
    pub fn new(probability: f64, seed: u64) -> Self {
        NullFields {
            probability,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ NULL_FIELDS_STREAM)),
        }
    }

    /// Blanks fields of `object` (a release or a chart). With probability 0 nothing is drawn.
    pub fn blank_fields(&self, object: &mut Map<String, Value>) {
        if self.probability <= 0.0 {
            return;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let keys: Vec<String> = object.keys().cloned().collect();
        for key in keys {
            let blank: f64 = rng.random();
            let how: f64 = rng.random();
            if blank < self.probability {
                if how < 0.5 {
                    object.insert(key, Value::Null);
                } else {
                    object.remove(&key);
                }
            }
        }
    }

    /// Blanks fields of every object in `answer`: an object itself, or each element of an
    /// array of them.
    pub fn blank_answer(&self, answer: &mut Value) {
        match answer {
            Value::Object(object) => self.blank_fields(object),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(object) = item {
                        self.blank_fields(object);
                    }
                }
            }
            _ => {}
        }
    }
}

/// A release object with `resources` as ShowAutopilotRelease words it: a JSON-encoded string
/// describing the release's objects when asked for (`show_resources=true`), left out
/// otherwise (and in every other answer).
pub fn with_resources(release: &mut Map<String, Value>, key: &ReleaseKey, shown: bool) {
    if shown {
        release.insert("resources".to_owned(), Value::String(resources_text(key)));
    } else {
        release.remove("resources");
    }
}

/// What the simulator says a release consists of: a Deployment and a Service named after it.
pub fn resources_text(key: &ReleaseKey) -> String {
    json!([
        {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": key.namespace, "name": key.name},
        {"apiVersion": "v1", "kind": "Service", "namespace": key.namespace, "name": key.name},
    ])
    .to_string()
}

/// Whether a raw query string asks for `show_resources=true`.
pub fn asks_for_resources(pairs: &[(String, String)]) -> bool {
    pairs
        .iter()
        .any(|(k, v)| k == "show_resources" && v.eq_ignore_ascii_case("true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> Map<String, Value> {
        (0..16).map(|i| (format!("field_{i}"), json!(i))).collect()
    }

    #[test]
    fn no_probability_changes_nothing_and_a_seed_replays() {
        let quiet = NullFields::new(0.0, 1);
        let mut untouched = object();
        quiet.blank_fields(&mut untouched);
        assert_eq!(untouched, object());

        let blanked = |seed| {
            let dice = NullFields::new(0.3, seed);
            (0..20)
                .map(|_| {
                    let mut o = object();
                    dice.blank_fields(&mut o);
                    o
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(blanked(7), blanked(7));
        assert_ne!(blanked(7), blanked(8));
    }

    #[test]
    fn about_the_probability_of_fields_are_null_or_missing_in_both_ways() {
        let dice = NullFields::new(0.3, 42);
        let (mut null, mut missing, mut total) = (0u32, 0u32, 0u32);
        for _ in 0..500 {
            let mut o = object();
            dice.blank_fields(&mut o);
            total += 16;
            null += o.values().filter(|v| v.is_null()).count() as u32;
            missing += 16 - o.len() as u32;
        }
        let share = f64::from(null + missing) / f64::from(total);
        assert!((0.27..0.33).contains(&share), "{share}");
        assert!(null > 0 && missing > 0);
    }

    #[test]
    fn resources_are_a_json_string_and_only_when_asked_for() {
        let key = ReleaseKey::new("c1", "default", "web");
        let mut release = Map::new();
        release.insert("resources".into(), Value::Null);
        with_resources(&mut release, &key, false);
        assert!(!release.contains_key("resources"));
        with_resources(&mut release, &key, true);
        let text = release["resources"].as_str().unwrap();
        let objects: Value = serde_json::from_str(text).unwrap();
        assert_eq!(objects[0]["kind"], "Deployment");
        assert!(asks_for_resources(&[(
            "show_resources".into(),
            "true".into()
        )]));
        assert!(!asks_for_resources(&[(
            "show_resources".into(),
            "false".into()
        )]));
    }
}
