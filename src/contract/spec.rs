//! The label spec of a function: the JSON text CVAT reads from the
//! `spec` annotation (`[{"id": 0, "name": "person", "type": "rectangle"}, …]`).
//!
//! CVAT silently drops results whose label is not in the spec and refuses a
//! whole spec with duplicate names or attributes lacking `name`,
//! `input_type` or `values`, so the same rules are enforced here at startup.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelSpec {
    /// Class index of the model this label stands for (CVAT itself ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttributeSpec>,
    /// Skeleton sublabels, SVG and anything else CVAT understands, kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeSpec {
    pub name: String,
    pub input_type: String,
    pub values: Vec<serde_json::Value>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

const INPUT_TYPES: [&str; 5] = ["number", "checkbox", "select", "radio", "text"];

/// Parses and validates a spec the way CVAT's lambda manager does.
pub fn parse_spec(text: &str) -> Result<Vec<LabelSpec>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let labels: Vec<LabelSpec> =
        serde_json::from_str(text).map_err(|e| format!("label spec is not valid: {e}"))?;
    validate(&labels)?;
    Ok(labels)
}

pub fn validate(labels: &[LabelSpec]) -> Result<(), String> {
    let mut names = HashSet::new();
    for label in labels {
        if label.name.trim().is_empty() {
            return Err("label spec has a label with an empty name".into());
        }
        if !names.insert(label.name.as_str()) {
            return Err(format!(
                "label spec names `{}` twice (CVAT refuses duplicate labels)",
                label.name
            ));
        }
        let mut attribute_names = HashSet::new();
        for attribute in &label.attributes {
            if !attribute_names.insert(attribute.name.as_str()) {
                return Err(format!(
                    "label `{}` has attribute `{}` twice",
                    label.name, attribute.name
                ));
            }
            if !INPUT_TYPES.contains(&attribute.input_type.as_str()) {
                return Err(format!(
                    "attribute `{}` of label `{}` has input_type `{}`; expected one of {INPUT_TYPES:?}",
                    attribute.name, label.name, attribute.input_type
                ));
            }
        }
    }
    Ok(())
}

/// A rectangle label per class name, ids in class order.
pub fn rectangle_labels(names: &[String]) -> Vec<LabelSpec> {
    names
        .iter()
        .enumerate()
        .map(|(id, name)| LabelSpec {
            id: Some(id as i64),
            name: name.clone(),
            kind: Some("rectangle".into()),
            attributes: Vec::new(),
            extra: Default::default(),
        })
        .collect()
}

/// The compact JSON text that goes into the `spec` annotation.
pub fn to_json(labels: &[LabelSpec]) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cvat_specs_and_keeps_unknown_keys() {
        let labels = parse_spec(
            r#"[{"id": 0, "name": "person", "type": "rectangle",
                 "attributes": [{"name": "age", "input_type": "number", "values": ["0", "150", "1"]}]},
                {"id": 1, "name": "body", "type": "skeleton", "sublabels": [], "svg": ""}]"#,
        )
        .unwrap();
        assert_eq!(labels.len(), 2);
        assert!(labels[1].extra.contains_key("svg"));
        assert!(to_json(&labels).contains("\"sublabels\":[]"));
        assert!(parse_spec("").unwrap().is_empty());
    }

    #[test]
    fn refuses_what_cvat_refuses() {
        assert!(parse_spec(r#"[{"name": "a"}, {"name": "a"}]"#)
            .unwrap_err()
            .contains("twice"));
        assert!(parse_spec(
            r#"[{"name": "a", "attributes": [{"name": "x", "input_type": "number"}]}]"#
        )
        .is_err());
        assert!(parse_spec(r#"[{"name": "a", "attributes": [{"name": "x", "input_type": "slider", "values": []}]}]"#).is_err());
    }
}
