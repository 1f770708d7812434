//! CVAT tracker request and reply types.
//!
//! CVAT sends `{"image": b64, "shapes": [[xtl, ytl, xbr, ybr], …], "states":
//! [state | null, …], "threshold"?}` and expects `{"shapes": […], "states": […]}`
//! back, one entry per input shape in the same order. The fields are read as
//! raw JSON first so every problem is reported with the exact entry it concerns
//! (`shapes[3]`, `states[1]`) instead of serde's position-only messages; a
//! tracking session that fails hours later has to tell the user which object broke.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    models::tracker::{parse_state, TrackerState, MAX_STATE_JSON_BYTES},
    Error, Result,
};

/// Coordinates beyond this are client bugs, not boxes; they would also lose
/// all precision once the tracker works in `f32`.
const MAX_COORD: f64 = 1.0e6;

/// Request body. Unknown fields (`threshold`, anything scripts add) are ignored.
#[derive(Debug, Deserialize)]
pub struct TrackerRequest {
    #[serde(default)]
    pub image: Option<Value>,
    #[serde(default)]
    pub shapes: Option<Value>,
    #[serde(default)]
    pub states: Option<Value>,
}

/// One object of a request, validated except for its geometry against the
/// frame (that needs the decoded image).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerObject {
    /// The box exactly as sent; echoed unchanged when the object is initialised.
    pub shape: [f64; 4],
    /// `None`: initialise on this frame with `shape`.
    pub state: Option<TrackerState>,
}

impl TrackerRequest {
    /// The base64 image text and the validated objects. Shapes and states are
    /// checked before the image is decoded, so a bad state costs no decode.
    pub fn into_parts(self) -> Result<(String, Vec<TrackerObject>)> {
        let image = match self.image {
            None | Some(Value::Null) => return Err(Error::MissingField("image")),
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(Error::invalid(
                    "image",
                    format!("expected a base64 string, got {}", kind(&other)),
                ))
            }
        };
        let shapes = match self.shapes {
            None | Some(Value::Null) => return Err(Error::MissingField("shapes")),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| shape(i, v))
                .collect::<Result<Vec<_>>>()?,
            Some(other) => {
                return Err(Error::invalid(
                    "shapes",
                    format!(
                        "expected an array of [xtl, ytl, xbr, ybr] boxes, got {}",
                        kind(&other)
                    ),
                ))
            }
        };
        let states = match self.states {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(Error::invalid(
                    "states",
                    format!(
                        "expected an array of tracker states (or nulls), got {}",
                        kind(&other)
                    ),
                ))
            }
        };
        if states.len() > shapes.len() {
            return Err(Error::invalid(
                "states",
                format!(
                    "has {} entries but `shapes` has {}; send one state (or null) per shape, in the same order",
                    states.len(),
                    shapes.len()
                ),
            ));
        }
        let mut states = states.into_iter();
        let objects = shapes
            .into_iter()
            .enumerate()
            .map(|(i, shape)| {
                let state = match states.next() {
                    None | Some(Value::Null) => None,
                    Some(value) => Some(state(i, &value)?),
                };
                Ok(TrackerObject { shape, state })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((image, objects))
    }
}

fn shape(index: usize, value: &Value) -> Result<[f64; 4]> {
    let bad = |reason: String| Error::invalid("shapes", format!("shapes[{index}] {reason}"));
    let Value::Array(items) = value else {
        return Err(bad(format!(
            "must be an array [xtl, ytl, xbr, ybr], got {}",
            kind(value)
        )));
    };
    if items.len() != 4 {
        return Err(bad(format!(
            "has {} numbers; a box is exactly 4: [xtl, ytl, xbr, ybr]",
            items.len()
        )));
    }
    let mut out = [0.0; 4];
    for (slot, (item, name)) in out
        .iter_mut()
        .zip(items.iter().zip(["xtl", "ytl", "xbr", "ybr"]))
    {
        // JSON has no NaN or infinity: they arrive as null or strings.
        let number = item.as_f64().filter(|v| v.is_finite()).ok_or_else(|| {
            bad(format!(
                "{name} must be a finite number, got {}",
                short(item)
            ))
        })?;
        if number.abs() > MAX_COORD {
            return Err(bad(format!(
                "{name} = {number} is out of range (|value| > {MAX_COORD})"
            )));
        }
        *slot = number;
    }
    Ok(out)
}

fn state(index: usize, value: &Value) -> Result<TrackerState> {
    let bad = |reason: String| Error::invalid("states", format!("states[{index}] {reason}"));
    // States are bounded by construction; anything bigger was not made by us.
    let size = serde_json::to_vec(value).map(|v| v.len()).unwrap_or(0);
    if size > MAX_STATE_JSON_BYTES {
        return Err(bad(format!(
            "is {size} bytes of JSON, more than the {MAX_STATE_JSON_BYTES} bytes a state of this tracker can have"
        )));
    }
    parse_state(value).map_err(|e| bad(format!("is not usable: {e}")))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The offending value, cut short so a megabyte of garbage does not end up in
/// an error message.
fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// A returned box: the input numbers on initialisation (CVAT expects them
/// unchanged), the tracker's `f32` box otherwise (serialised without `f64` noise).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ReplyShape {
    Input([f64; 4]),
    Tracked([f32; 4]),
}

/// Reply body: one shape and one state per input shape, same order.
#[derive(Debug, Serialize)]
pub struct TrackerReply {
    pub shapes: Vec<ReplyShape>,
    pub states: Vec<TrackerState>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{contract::parse_body, models::tracker};

    fn parts(body: &str) -> Result<(String, Vec<TrackerObject>)> {
        parse_body::<TrackerRequest>(body.as_bytes())?.into_parts()
    }

    fn err(body: &str) -> Error {
        match parts(body) {
            Ok(p) => panic!("accepted {body}: {p:?}"),
            Err(e) => e,
        }
    }

    /// A real state, made by the tracker on a small textured frame.
    fn real_state() -> Value {
        let frame = image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 11 % 256) as u8,
                ((x * y) % 256) as u8,
            ])
        });
        let t = tracker::init(&frame, [10.0, 10.0, 40.0, 30.0]).expect("init");
        serde_json::to_value(t.state).expect("state json")
    }

    #[test]
    fn missing_and_short_states_mean_initialise() {
        let (image, objects) =
            parts(r#"{"image":"aGk=","shapes":[[1,2,3.5,4],[5,6,7,8]],"threshold":0.5}"#).unwrap();
        assert_eq!(image, "aGk=");
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].shape, [1.0, 2.0, 3.5, 4.0]);
        assert!(objects.iter().all(|o| o.state.is_none()));

        let state = real_state();
        let body = serde_json::json!({"image": "aGk=", "shapes": [[1, 2, 3, 4], [5, 6, 7, 8]], "states": [null, state]});
        let (_, objects) = parts(&body.to_string()).unwrap();
        assert!(objects[0].state.is_none());
        assert!(objects[1].state.is_some());

        let body = serde_json::json!({"image": "aGk=", "shapes": [[1, 2, 3, 4], [5, 6, 7, 8]], "states": [state]});
        let (_, objects) = parts(&body.to_string()).unwrap();
        assert!(objects[0].state.is_some() && objects[1].state.is_none());

        let (_, objects) = parts(r#"{"image":"aGk=","shapes":[],"states":null}"#).unwrap();
        assert!(objects.is_empty());
    }

    #[test]
    fn bad_shapes_name_the_entry_and_the_problem() {
        for (body, needle) in [
            (r#"{"shapes":[[1,2,3,4]]}"#, "`image` is missing"),
            (r#"{"image":5,"shapes":[[1,2,3,4]]}"#, "base64 string"),
            (r#"{"image":"aGk="}"#, "`shapes` is missing"),
            (r#"{"image":"aGk=","shapes":{"a":1}}"#, "got an object"),
            (
                r#"{"image":"aGk=","shapes":[[1,2,3]]}"#,
                "shapes[0] has 3 numbers",
            ),
            (
                r#"{"image":"aGk=","shapes":[[1,2,3,4],[1,2,3,4,5]]}"#,
                "shapes[1] has 5 numbers",
            ),
            (
                r#"{"image":"aGk=","shapes":[[1,2,null,4]]}"#,
                "xbr must be a finite number, got null",
            ),
            (
                r#"{"image":"aGk=","shapes":[["NaN",2,3,4]]}"#,
                "xtl must be a finite number, got \"NaN\"",
            ),
            (
                r#"{"image":"aGk=","shapes":[[1,"2",3,4]]}"#,
                "ytl must be a finite number",
            ),
            (
                r#"{"image":"aGk=","shapes":[[1,2,3,[4]]]}"#,
                "ybr must be a finite number",
            ),
            (
                r#"{"image":"aGk=","shapes":[[1,2,3,1e300]]}"#,
                "out of range",
            ),
            (
                r#"{"image":"aGk=","shapes":["1,2,3,4"]}"#,
                "shapes[0] must be an array",
            ),
        ] {
            let e = err(body);
            assert!(e.status().is_client_error(), "{body}: {e}");
            assert!(e.to_string().contains(needle), "{body}: {e}");
        }
    }

    #[test]
    fn bad_states_name_the_entry_and_the_problem() {
        let good = real_state();
        let mut wrong_version = good.clone();
        wrong_version["v"] = 2.into();
        let mut corrupt_model = good.clone();
        corrupt_model["model"]["x"] = "%%%not base64".into();
        let mut short_model = good.clone();
        short_model["model"]["alphaf"] = "AAAA".into();
        let mut no_version = good.clone();
        no_version.as_object_mut().unwrap().remove("v");
        let mut huge = good.clone();
        huge["padding"] = "x".repeat(MAX_STATE_JSON_BYTES).into();
        for (states, needle) in [
            (
                serde_json::json!([good.clone(), good.clone()]),
                "has 2 entries but `shapes` has 1",
            ),
            (serde_json::json!({"v": 1}), "expected an array"),
            (
                serde_json::json!([wrong_version]),
                "unsupported state version 2",
            ),
            (serde_json::json!([no_version]), "missing format version"),
            (serde_json::json!([corrupt_model]), "not valid base64"),
            (serde_json::json!([short_model]), "model.alphaf has 3 bytes"),
            (serde_json::json!([{"v": 1}]), "malformed state"),
            (
                serde_json::json!(["opaque"]),
                "expected a JSON object, got a string",
            ),
            (serde_json::json!([huge]), "bytes of JSON"),
        ] {
            let body =
                serde_json::json!({"image": "aGk=", "shapes": [[1, 2, 3, 4]], "states": states});
            let e = err(&body.to_string());
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST, "{e}");
            assert!(e.to_string().contains(needle), "{needle}: {e}");
            assert!(e.to_string().contains("states"), "{e}");
        }
    }

    #[test]
    fn replies_echo_input_numbers_and_keep_f32_boxes_short() {
        let state: TrackerState = serde_json::from_value(real_state()).unwrap();
        let reply = TrackerReply {
            shapes: vec![
                ReplyShape::Input([-10.25, 0.1, 3.0, 1e-3]),
                ReplyShape::Tracked([1.1, 2.5, 3.0, 4.0]),
            ],
            states: vec![state.clone(), state],
        };
        // Serialised directly (as the function does): `to_value` would widen the f32s.
        let text = serde_json::to_string(&reply).unwrap();
        assert!(
            text.starts_with(r#"{"shapes":[[-10.25,0.1,3.0,0.001],[1.1,2.5,3.0,4.0]],"states":"#),
            "{}",
            &text[..80]
        );
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["states"][0]["v"], tracker::STATE_VERSION);
    }
}
