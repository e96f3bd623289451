//! A property test of how answers are read: release, history, list and chart objects with any
//! subset of fields null, missing, or in the alternative shapes an SDK model reads (a revision
//! as text, a boolean as text, `values` as an object or a JSON-encoded string or `""`), and
//! unknown fields besides. Every such answer is read, each field as the SDK reads it, and what
//! is read survives being written and read again.

use flotilla::cce::model::{Chart, Release, ReleaseStatus};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// How one field appears in a generated answer.
#[derive(Clone, Debug)]
enum Shape<T> {
    Missing,
    Null,
    Given(T),
}

fn shape<T: Clone + std::fmt::Debug + 'static>(
    given: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Shape<T>> {
    prop_oneof![
        1 => Just(Shape::Missing),
        1 => Just(Shape::Null),
        3 => given.prop_map(Shape::Given),
    ]
}

/// A revision and the form it is written in.
#[derive(Clone, Debug)]
enum Revision {
    Number(i32),
    Text(i32),
    Float(i32),
}

fn revision() -> impl Strategy<Value = Revision> {
    prop_oneof![
        any::<i32>().prop_map(Revision::Number),
        any::<i32>().prop_map(Revision::Text),
        (-1_000_000i32..1_000_000).prop_map(Revision::Float),
    ]
}

/// A values-like field: `None` written as `""`, else an object written as itself or as its
/// JSON text.
#[derive(Clone, Debug)]
struct Encoded {
    object: Option<Map<String, Value>>,
    as_text: bool,
}

fn encoded() -> impl Strategy<Value = Encoded> {
    let object = proptest::collection::btree_map(
        "[a-zA-Z][a-zA-Z0-9]{0,6}",
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[ -~]{0,12}".prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
        ],
        0..4,
    )
    .prop_map(|m| m.into_iter().collect::<Map<String, Value>>());
    (proptest::option::of(object), any::<bool>())
        .prop_map(|(object, as_text)| Encoded { object, as_text })
}

fn status() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "DEPLOYED",
            "DELETED",
            "FAILED",
            "DELETING",
            "PENDING_INSTALL",
            "PENDING_UPGRADE",
            "PENDING_ROLLBACK",
            "UNKNOWN",
            "SUPERSEDED",
            "UNINSTALLING",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z_ ]{0,16}",
    ]
}

/// A boolean and whether it is written as text.
fn flag() -> impl Strategy<Value = (bool, bool)> {
    (any::<bool>(), any::<bool>())
}

const TEXT_FIELDS: [&str; 8] = [
    "cluster_id",
    "cluster_name",
    "create_at",
    "description",
    "name",
    "namespace",
    "status_description",
    "update_at",
];

#[derive(Clone, Debug)]
struct GeneratedRelease {
    version: Shape<Revision>,
    status: Shape<String>,
    chart_name: Shape<String>,
    chart_version: Shape<String>,
    chart_public: Shape<(bool, bool)>,
    values: Shape<Encoded>,
    parameters: Shape<Encoded>,
    resources: Shape<Encoded>,
    texts: Vec<Shape<String>>,
    unknown: Option<(String, i64)>,
}

fn generated_release() -> impl Strategy<Value = GeneratedRelease> {
    (
        (
            shape(revision()),
            shape(status()),
            shape("[ -~]{0,10}"),
            shape("[0-9a-z.]{0,8}"),
            shape(flag()),
        ),
        (shape(encoded()), shape(encoded()), shape(encoded())),
        proptest::collection::vec(shape("[ -~]{0,12}"), TEXT_FIELDS.len()),
        proptest::option::of(("x_[a-z]{1,8}", any::<i64>())),
    )
        .prop_map(
            |(
                (version, status, chart_name, chart_version, chart_public),
                (values, parameters, resources),
                texts,
                unknown,
            )| GeneratedRelease {
                version,
                status,
                chart_name,
                chart_version,
                chart_public,
                values,
                parameters,
                resources,
                texts,
                unknown,
            },
        )
}

fn put<T>(
    object: &mut Map<String, Value>,
    key: &str,
    field: &Shape<T>,
    write: impl Fn(&T) -> Value,
) {
    match field {
        Shape::Missing => {}
        Shape::Null => {
            object.insert(key.to_owned(), Value::Null);
        }
        Shape::Given(value) => {
            object.insert(key.to_owned(), write(value));
        }
    }
}

fn write_encoded(field: &Encoded) -> Value {
    match &field.object {
        None => json!(""),
        Some(object) if field.as_text => Value::String(Value::Object(object.clone()).to_string()),
        Some(object) => Value::Object(object.clone()),
    }
}

impl GeneratedRelease {
    /// The answer's JSON.
    fn answer(&self) -> Value {
        let mut o = Map::new();
        put(&mut o, "version", &self.version, |r| match r {
            Revision::Number(n) => json!(n),
            Revision::Text(n) => json!(n.to_string()),
            Revision::Float(n) => json!(f64::from(*n)),
        });
        put(&mut o, "status", &self.status, |s| json!(s));
        put(&mut o, "chart_name", &self.chart_name, |s| json!(s));
        put(&mut o, "chart_version", &self.chart_version, |s| json!(s));
        put(
            &mut o,
            "chart_public",
            &self.chart_public,
            |(b, as_text)| {
                if *as_text {
                    json!(b.to_string())
                } else {
                    json!(b)
                }
            },
        );
        put(&mut o, "values", &self.values, write_encoded);
        put(&mut o, "parameters", &self.parameters, write_encoded);
        put(&mut o, "resources", &self.resources, write_encoded);
        for (key, text) in TEXT_FIELDS.iter().zip(&self.texts) {
            put(&mut o, key, text, |s| json!(s));
        }
        if let Some((key, value)) = &self.unknown {
            o.insert(key.clone(), json!(value));
        }
        Value::Object(o)
    }

    /// What the SDK reads, in flotilla's terms.
    fn expected(&self) -> Release {
        let given = |s: &Shape<String>| match s {
            Shape::Given(s) if !s.trim().is_empty() => Some(s.clone()),
            _ => None,
        };
        let object = |s: &Shape<Encoded>| match s {
            Shape::Given(Encoded {
                object: Some(o), ..
            }) => Value::Object(o.clone()),
            _ => Value::Null,
        };
        let text = |i: usize| match &self.texts[i] {
            Shape::Given(s) => s.clone(),
            _ => String::new(),
        };
        Release {
            version: match &self.version {
                Shape::Given(Revision::Number(n) | Revision::Text(n) | Revision::Float(n)) => {
                    Some(i64::from(*n))
                }
                _ => None,
            },
            status: match &self.status {
                Shape::Given(s) if !s.is_empty() => Some(ReleaseStatus::from(s.as_str())),
                _ => None,
            },
            chart_name: given(&self.chart_name),
            chart_version: given(&self.chart_version),
            chart_public: match self.chart_public {
                Shape::Given((b, _)) => Some(b),
                _ => None,
            },
            values: object(&self.values),
            parameters: object(&self.parameters),
            resources: object(&self.resources),
            cluster_id: text(0),
            cluster_name: text(1),
            create_at: text(2),
            description: text(3),
            name: text(4),
            namespace: text(5),
            status_description: text(6),
            update_at: text(7),
        }
    }
}

#[derive(Clone, Debug)]
struct GeneratedChart {
    texts: Vec<Shape<String>>,
    public: Shape<(bool, bool)>,
    values: Shape<Encoded>,
}

const CHART_TEXT_FIELDS: [&str; 11] = [
    "id",
    "name",
    "version",
    "description",
    "source",
    "icon_url",
    "chart_url",
    "create_at",
    "update_at",
    "translate",
    "instruction",
];

fn generated_chart() -> impl Strategy<Value = GeneratedChart> {
    (
        proptest::collection::vec(shape("[ -~]{0,12}"), CHART_TEXT_FIELDS.len()),
        shape(flag()),
        shape(encoded()),
    )
        .prop_map(|(texts, public, values)| GeneratedChart {
            texts,
            public,
            values,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every release answer the SDK models read is read, each field as they read it; what is
    /// read is written and read back unchanged.
    #[test]
    fn every_release_answer_an_sdk_reads_is_read_as_it_reads_it(generated in generated_release()) {
        let answer = generated.answer();
        let read: Release = serde_json::from_value(answer.clone())
            .map_err(|e| TestCaseError::fail(format!("{e}: {answer}")))?;
        prop_assert_eq!(&read, &generated.expected(), "{}", answer);
        let again: Release = serde_json::from_str(&serde_json::to_string(&read).unwrap()).unwrap();
        prop_assert_eq!(again, read);
    }

    /// A history or list answer: an array of such objects, `null` entries included (read by
    /// the client as entries of which nothing is given).
    #[test]
    fn every_history_and_list_answer_is_read(entries in proptest::collection::vec(
        proptest::option::of(generated_release()), 0..6,
    )) {
        let answer = Value::Array(
            entries.iter().map(|e| e.as_ref().map_or(Value::Null, GeneratedRelease::answer)).collect(),
        );
        let read: Vec<Option<Release>> = serde_json::from_value(answer)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected: Vec<Option<Release>> =
            entries.iter().map(|e| e.as_ref().map(GeneratedRelease::expected)).collect();
        prop_assert_eq!(read, expected);
    }

    /// Every chart answer is read; a chart's name and version are empty when not given.
    #[test]
    fn every_chart_answer_an_sdk_reads_is_read(generated in generated_chart()) {
        let mut o = Map::new();
        for (key, text) in CHART_TEXT_FIELDS.iter().zip(&generated.texts) {
            put(&mut o, key, text, |s| json!(s));
        }
        put(&mut o, "public", &generated.public, |(b, as_text)| {
            if *as_text { json!(b.to_string()) } else { json!(b) }
        });
        put(&mut o, "values", &generated.values, write_encoded);
        let answer = Value::Object(o);
        let read: Chart = serde_json::from_value(answer.clone())
            .map_err(|e| TestCaseError::fail(format!("{e}: {answer}")))?;
        let text = |i: usize| match &generated.texts[i] {
            Shape::Given(s) => s.clone(),
            _ => String::new(),
        };
        prop_assert_eq!(&read.id, &text(0));
        prop_assert_eq!(&read.name, &text(1));
        prop_assert_eq!(&read.version, &text(2));
        prop_assert_eq!(read.public, match generated.public {
            Shape::Given((b, _)) => Some(b),
            _ => None,
        });
        let values = match &generated.values {
            Shape::Given(e) => match write_encoded(e) {
                Value::String(s) => s,
                other => other.to_string(),
            },
            _ => String::new(),
        };
        prop_assert_eq!(&read.values, &values);
        let again: Chart = serde_json::from_str(&serde_json::to_string(&read).unwrap()).unwrap();
        prop_assert_eq!(again, read);
    }
}
