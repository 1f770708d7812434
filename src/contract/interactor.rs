//! CVAT interactor (SAM) request and reply types.
//!
//! Request: `{"image": b64, "pos_points": [[x, y], …], "neg_points": […],
//! "obj_bbox": [[x1, y1], [x2, y2]] | null, "threshold"?}` in float pixels of
//! the upright image. Points are read as loose JSON so a malformed one gets a
//! message naming it (`pos_points[2]`) instead of serde's generic error.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::number_field;
use crate::{Error, Result};

/// More clicks than any annotator makes; bounds the work a request can ask for.
pub const MAX_POINTS: usize = 128;

/// Request body. Unknown fields (`frame`, `threshold`, …) are ignored.
#[derive(Debug, Deserialize)]
pub struct InteractorRequest {
    pub image: Option<String>,
    #[serde(default)]
    pub pos_points: Option<Value>,
    #[serde(default)]
    pub neg_points: Option<Value>,
    #[serde(default)]
    pub obj_bbox: Option<Value>,
}

/// The validated clicks, in pixels of the upright image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prompt {
    pub positive: Vec<[f64; 2]>,
    pub negative: Vec<[f64; 2]>,
    /// `[x_min, y_min, x_max, y_max]`.
    pub bbox: Option<[f64; 4]>,
}

impl InteractorRequest {
    pub fn image(&self) -> Result<&str> {
        self.image.as_deref().ok_or(Error::MissingField("image"))
    }

    /// Parses the points and the box. `pos_points`/`neg_points` may be empty
    /// or absent; a box may come as two corners or as four numbers.
    pub fn prompt(&self) -> Result<Prompt> {
        Ok(Prompt {
            positive: points("pos_points", self.pos_points.as_ref())?,
            negative: points("neg_points", self.neg_points.as_ref())?,
            bbox: bbox(self.obj_bbox.as_ref())?,
        })
    }
}

impl Prompt {
    /// SAM needs something to segment: `min_pos_points` is 1 unless a box is given.
    pub fn require_object(&self) -> Result<()> {
        if self.positive.is_empty() && self.bbox.is_none() {
            return Err(Error::invalid(
                "pos_points",
                "at least one positive point (or an obj_bbox) is needed; negative points alone select nothing",
            ));
        }
        Ok(())
    }

    /// Every point (and box corner) must lie on the `width × height` image
    /// (edges included): a point elsewhere means the client mixed up frames
    /// or coordinate systems, and SAM would answer with nonsense.
    pub fn check_inside(&self, width: u32, height: u32) -> Result<()> {
        let (w, h) = (f64::from(width), f64::from(height));
        let inside = |p: [f64; 2]| (0.0..=w).contains(&p[0]) && (0.0..=h).contains(&p[1]);
        for (field, list) in [
            ("pos_points", &self.positive),
            ("neg_points", &self.negative),
        ] {
            if let Some((i, p)) = list.iter().enumerate().find(|(_, p)| !inside(**p)) {
                return Err(Error::invalid(
                    field,
                    format!(
                        "point {i} [{}, {}] is outside the {width}x{height} image",
                        p[0], p[1]
                    ),
                ));
            }
        }
        if let Some([x0, y0, x1, y1]) = self.bbox {
            if !inside([x0, y0]) || !inside([x1, y1]) {
                return Err(Error::invalid(
                    "obj_bbox",
                    format!(
                        "box [{x0}, {y0}, {x1}, {y1}] reaches outside the {width}x{height} image"
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn point(field: &'static str, i: usize, value: &Value) -> Result<[f64; 2]> {
    let bad = || {
        Error::invalid(
            field,
            format!("item {i} must be a point [x, y], got {value}"),
        )
    };
    let Value::Array(xy) = value else {
        return Err(bad());
    };
    let [x, y] = xy.as_slice() else {
        return Err(bad());
    };
    let x = number_field(field, x).map_err(|_| bad())?;
    let y = number_field(field, y).map_err(|_| bad())?;
    if !(x.is_finite() && y.is_finite()) {
        return Err(bad());
    }
    Ok([x, y])
}

fn points(field: &'static str, value: Option<&Value>) -> Result<Vec<[f64; 2]>> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            if items.len() > MAX_POINTS {
                return Err(Error::invalid(
                    field,
                    format!(
                        "{} points is more than the limit of {MAX_POINTS}",
                        items.len()
                    ),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| point(field, i, v))
                .collect()
        }
        Some(other) => Err(Error::invalid(
            field,
            format!("expected a list of [x, y] points, got {other}"),
        )),
    }
}

fn bbox(value: Option<&Value>) -> Result<Option<[f64; 4]>> {
    let bad = |v: &Value| {
        Error::invalid(
            "obj_bbox",
            format!("expected [[x1, y1], [x2, y2]] or null, got {v}"),
        )
    };
    let corners = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) if items.is_empty() => return Ok(None),
        Some(v @ Value::Array(items)) => match items.as_slice() {
            [a, b] => [point("obj_bbox", 0, a)?, point("obj_bbox", 1, b)?],
            [x0, y0, x1, y1] => {
                let n = |v: &Value| number_field("obj_bbox", v).ok().filter(|n| n.is_finite());
                match (n(x0), n(y0), n(x1), n(y1)) {
                    (Some(x0), Some(y0), Some(x1), Some(y1)) => [[x0, y0], [x1, y1]],
                    _ => return Err(bad(v)),
                }
            }
            _ => return Err(bad(v)),
        },
        Some(other) => return Err(bad(other)),
    };
    let [[ax, ay], [bx, by]] = corners;
    Ok(Some([ax.min(bx), ay.min(by), ax.max(bx), ay.max(by)]))
}

/// Browser-decoder reply: base64 of the little-endian float32 `[1,256,64,64]` embedding.
#[derive(Debug, Serialize, Deserialize)]
pub struct BlobReply {
    pub blob: String,
}

/// Generic interactor reply (`InteractorResults` in CVAT's UI).
#[derive(Debug, Serialize, Deserialize)]
pub struct MaskReply {
    /// Rows of the crop `bounds`, 0 or 255.
    pub mask: Vec<Vec<u8>>,
    /// Inclusive `[xtl, ytl, xbr, ybr]`.
    pub bounds: [u32; 4],
    /// Outer polygon of the largest component, `[[x, y], …]`.
    pub points: Vec<[i32; 2]>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::parse_body;

    fn prompt(body: &str) -> Result<Prompt> {
        parse_body::<InteractorRequest>(body.as_bytes())?.prompt()
    }

    #[test]
    fn parses_cvat_bodies() {
        let p = prompt(
            r#"{"image":"x","pos_points":[[1,2.5]],"neg_points":[],"obj_bbox":null,"frame":3,"threshold":0.5}"#,
        )
        .unwrap();
        assert_eq!(p.positive, vec![[1.0, 2.5]]);
        assert!(p.negative.is_empty() && p.bbox.is_none());
        let p =
            prompt(r#"{"image":"x","pos_points":[],"neg_points":[],"obj_bbox":[[30,40],[10,20]]}"#)
                .unwrap();
        assert_eq!(p.bbox, Some([10.0, 20.0, 30.0, 40.0]));
        let p = prompt(r#"{"image":"x","obj_bbox":[1,2,3,4]}"#).unwrap();
        assert_eq!(p.bbox, Some([1.0, 2.0, 3.0, 4.0]));
    }

    #[test]
    fn bad_points_are_named() {
        let e = prompt(r#"{"pos_points":[[1,2],[3]]}"#).unwrap_err();
        assert!(
            e.to_string().contains("pos_points") && e.to_string().contains("item 1"),
            "{e}"
        );
        let e = prompt(r#"{"neg_points":"here"}"#).unwrap_err();
        assert!(e.to_string().contains("neg_points"), "{e}");
        let e = prompt(r#"{"obj_bbox":[[1,2]]}"#).unwrap_err();
        assert!(e.to_string().contains("obj_bbox"), "{e}");
        let many = format!(
            r#"{{"pos_points":[{}]}}"#,
            vec!["[1,1]"; MAX_POINTS + 1].join(",")
        );
        assert!(prompt(&many).unwrap_err().to_string().contains("limit"));
    }

    #[test]
    fn checks_object_and_bounds() {
        let p = prompt(r#"{"neg_points":[[1,1]]}"#).unwrap();
        assert_eq!(p.require_object().unwrap_err().status(), 400);
        let p = prompt(r#"{"pos_points":[[10,10],[640,480]]}"#).unwrap();
        assert!(p.check_inside(640, 480).is_ok());
        let e = p.check_inside(639, 480).unwrap_err();
        assert!(e.to_string().contains("point 1 [640, 480]"), "{e}");
        let p = prompt(r#"{"obj_bbox":[[-1,0],[5,5]]}"#).unwrap();
        assert!(p
            .check_inside(10, 10)
            .unwrap_err()
            .to_string()
            .contains("obj_bbox"));
    }
}
