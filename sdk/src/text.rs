//! Parameter fields meant as text that YAML may hand over as numbers or booleans
//! (`workflow_name: 2024`, `params: {n: 3}`): use them with
//! `#[serde(deserialize_with = "shoal_sdk::text::scalar")]` and
//! `#[schemars(with = "shoal_sdk::text::Scalar")]` (or the optional / map variants).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer};

/// The JSON Schema of such a field: a string, a number or a boolean.
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Scalar {
    Text(String),
    Number(f64),
    Bool(bool),
}

struct Text;

impl<'de> de::Visitor<'de> for Text {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, number or boolean")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// A string, number or boolean, as text.
pub fn scalar<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_any(Text)
}

/// A whole number written as a number or as text (`60000`, `"60000"`): DolphinScheduler's
/// exports and ${...} substitution both hand numbers over as text.
pub fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let text = scalar(deserializer)?;
    text.trim()
        .parse::<u64>()
        .map_err(|_| de::Error::custom(format!("`{text}` is not a whole number")))
}

/// Like [`number`], where the field may be absent or null.
pub fn optional_number<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    match optional_scalar(deserializer)? {
        None => Ok(None),
        Some(t) if t.trim().is_empty() => Ok(None),
        // A reference, read while a definition is checked before substitution; the
        // task itself gets the value.
        Some(t) if t.contains("${") || t.contains("$[") => Ok(None),
        Some(t) => t
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("`{t}` is not a whole number"))),
    }
}

/// Like [`scalar`], where the field may be absent or null.
pub fn optional_scalar<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    struct OptionalText;
    impl<'de> de::Visitor<'de> for OptionalText {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string, number or boolean, or nothing")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(Text).map(Some)
        }
    }
    deserializer.deserialize_option(OptionalText)
}

/// A map whose values are [`scalar`]s.
pub fn scalar_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    /// A newtype so serde can deserialize the values inside the map.
    struct Value(String);
    impl<'de> Deserialize<'de> for Value {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(Text).map(Value)
        }
    }
    let map = BTreeMap::<String, Value>::deserialize(deserializer)?;
    Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct Fields {
        #[serde(deserialize_with = "super::scalar")]
        name: String,
        #[serde(default, deserialize_with = "super::optional_scalar")]
        task: Option<String>,
        #[serde(default, deserialize_with = "super::scalar_map")]
        params: std::collections::BTreeMap<String, String>,
    }

    #[test]
    fn numbers_and_booleans_become_text() {
        let f: Fields = serde_json::from_value(
            serde_json::json!({"name": 2024, "task": null, "params": {"n": 3, "b": true, "s": "x"}}),
        )
        .unwrap();
        assert_eq!(f.name, "2024");
        assert_eq!(f.task, None);
        assert_eq!(f.params["n"], "3");
        assert_eq!(f.params["b"], "true");
        assert_eq!(f.params["s"], "x");
        let f: Fields =
            serde_json::from_value(serde_json::json!({"name": "w", "task": 1.5})).unwrap();
        assert_eq!(f.task.as_deref(), Some("1.5"));
        assert!(serde_json::from_value::<Fields>(serde_json::json!({"name": []})).is_err());
    }
}
