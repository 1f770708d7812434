//! A Nuclio function configuration: the `function.yaml` users deploy with
//! `nuctl`, or the `processor.yaml` Nuclio mounts into the container (same
//! `metadata`/`spec` layout). The server reads what it needs from it, so one
//! file describes the function to Nuclio, to CVAT and to the server.

use std::{collections::BTreeMap, path::Path, time::Duration};

use serde_yaml_ng::Value;

/// Where Nuclio mounts the function's processor configuration.
pub const NUCLIO_PROCESSOR_CONFIG: &str = "/etc/nuclio/config/processor/processor.yaml";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionConfig {
    pub name: Option<String>,
    pub namespace: Option<String>,
    /// Annotation values as CVAT sees them: strings; `false` booleans are left
    /// out because CVAT parses them with Python `bool()` ("false" is true).
    pub annotations: BTreeMap<String, String>,
    pub description: Option<String>,
    pub runtime: Option<String>,
    pub event_timeout: Option<Duration>,
    pub max_request_body_size: Option<usize>,
}

impl FunctionConfig {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read function config {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("function config {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let root: Value =
            serde_yaml_ng::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
        let metadata = root.get("metadata");
        let spec = root.get("spec");
        let string_at =
            |v: Option<&Value>, key: &str| v.and_then(|v| v.get(key)).and_then(scalar_string);

        let mut annotations = BTreeMap::new();
        if let Some(Value::Mapping(map)) = metadata.and_then(|m| m.get("annotations")) {
            for (key, value) in map {
                if matches!(value, Value::Bool(false)) {
                    continue;
                }
                if let (Some(key), Some(text)) = (scalar_string(key), scalar_string(value)) {
                    annotations.insert(key, text);
                }
            }
        }
        let event_timeout = match string_at(spec, "eventTimeout") {
            Some(t) if !t.trim().is_empty() => Some(
                humantime::parse_duration(t.trim())
                    .map_err(|e| format!("spec.eventTimeout `{t}`: {e}"))?,
            ),
            _ => None,
        };
        let max_request_body_size = spec
            .and_then(|s| s.get("triggers"))
            .and_then(Value::as_mapping)
            .into_iter()
            .flat_map(|triggers| triggers.values())
            .filter(|t| t.get("kind").and_then(Value::as_str) == Some("http"))
            .find_map(|t| t.get("attributes")?.get("maxRequestBodySize")?.as_u64())
            .map(|n| n as usize);
        Ok(Self {
            name: string_at(metadata, "name"),
            namespace: string_at(metadata, "namespace"),
            annotations,
            description: string_at(spec, "description"),
            runtime: string_at(spec, "runtime"),
            event_timeout,
            max_request_body_size,
        })
    }
}

fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
metadata:
  name: yolo11x-cvat-detector-gpu
  namespace: cvat
  annotations:
    name: YOLO11x
    type: detector
    version: 2
    startswith_box: false
    spec: |
      [{"id": 0, "name": "person", "type": "rectangle"}]
spec:
  description: YOLO11x on ONNX Runtime
  runtime: "python:3.9"
  eventTimeout: 30s
  triggers:
    myHttpTrigger:
      kind: http
      attributes:
        maxRequestBodySize: 33554432
"#;

    #[test]
    fn reads_what_the_server_needs() {
        let c = FunctionConfig::parse(YAML).unwrap();
        assert_eq!(c.name.as_deref(), Some("yolo11x-cvat-detector-gpu"));
        assert_eq!(c.annotations.get("version").map(String::as_str), Some("2"));
        assert!(!c.annotations.contains_key("startswith_box"));
        assert!(c.annotations["spec"].contains("person"));
        assert_eq!(c.event_timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.max_request_body_size, Some(33554432));
        assert_eq!(c.description.as_deref(), Some("YOLO11x on ONNX Runtime"));
    }

    #[test]
    fn explains_bad_yaml() {
        assert!(FunctionConfig::parse("metadata: [")
            .unwrap_err()
            .contains("YAML"));
    }
}
