//! Detector functions: `{"image": b64, "threshold"?: float}` in, a JSON array
//! of shapes out, exactly as CVAT's lambda manager sends and parses them.

use serde::{Deserialize, Serialize};

use super::number_field;
use crate::{Error, Result};

/// Request body. Unknown fields are ignored (CVAT and scripts add their own).
#[derive(Debug, Deserialize)]
pub struct DetectorRequest {
    pub image: Option<String>,
    #[serde(default)]
    pub threshold: Option<serde_json::Value>,
}

impl DetectorRequest {
    /// The base64 image text, or the error naming the missing field.
    pub fn image(&self) -> Result<&str> {
        self.image.as_deref().ok_or(Error::MissingField("image"))
    }

    /// The requested threshold, validated to [0, 1]; `None` → use the default.
    pub fn threshold(&self) -> Result<Option<f32>> {
        match &self.threshold {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => {
                let t = number_field("threshold", value)?;
                if !(0.0..=1.0).contains(&t) {
                    return Err(Error::invalid(
                        "threshold",
                        format!("{t} is outside [0, 1]"),
                    ));
                }
                Ok(Some(t as f32))
            }
        }
    }
}

/// One detected object in CVAT's format.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DetectorShape {
    pub label: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `[xtl, ytl, xbr, ybr]` in pixels of the upright image.
    pub points: Vec<f32>,
    /// CVAT's functions send the score as a string (`str(score)`).
    pub confidence: String,
    pub attributes: Vec<serde_json::Value>,
}

impl DetectorShape {
    pub fn rectangle(label: String, bbox: [f32; 4], score: f32) -> Self {
        Self {
            label,
            kind: "rectangle".into(),
            points: bbox.to_vec(),
            confidence: score.to_string(),
            attributes: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::parse_body;

    #[test]
    fn accepts_cvat_bodies_and_ignores_extra_fields() {
        let r: DetectorRequest =
            parse_body(br#"{"image":"aGk=","threshold":0.3,"mapping":{}}"#).unwrap();
        assert_eq!(r.image().unwrap(), "aGk=");
        assert_eq!(r.threshold().unwrap(), Some(0.3));
        let r: DetectorRequest = parse_body(br#"{"image":"aGk="}"#).unwrap();
        assert_eq!(r.threshold().unwrap(), None);
    }

    #[test]
    fn names_the_bad_field() {
        let r: DetectorRequest = parse_body(br#"{"threshold":0.3}"#).unwrap();
        assert!(matches!(r.image(), Err(Error::MissingField("image"))));
        for bad in [
            r#"{"image":"","threshold":1.5}"#,
            r#"{"image":"","threshold":-0.1}"#,
            r#"{"image":"","threshold":"x"}"#,
        ] {
            let r: DetectorRequest = parse_body(bad.as_bytes()).unwrap();
            let err = r.threshold().unwrap_err();
            assert!(err.to_string().contains("threshold"), "{err}");
        }
        assert!(matches!(
            parse_body::<DetectorRequest>(b"{not json"),
            Err(Error::InvalidJson(_))
        ));
        assert!(matches!(
            parse_body::<DetectorRequest>(b""),
            Err(Error::EmptyBody)
        ));
    }

    #[test]
    fn serialises_like_cvat_functions() {
        let shape = DetectorShape::rectangle("cat".into(), [1.0, 2.5, 3.0, 4.0], 0.5);
        let json = serde_json::to_value(&shape).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"label": "cat", "type": "rectangle", "points": [1.0, 2.5, 3.0, 4.0], "confidence": "0.5", "attributes": []})
        );
    }
}
