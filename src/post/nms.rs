//! Class-aware greedy non-maximum suppression, as Ultralytics runs it through
//! `torchvision.ops.nms`: candidates in descending score order, at most
//! `max_nms` considered, a box suppressed when its IoU with a kept box of the
//! same class is *strictly* above the threshold, at most `max_det` kept.

/// A detection candidate in model-input pixels, corners `[x1, y1, x2, y2]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub bbox: [f32; 4],
    pub score: f32,
    pub class: usize,
}

/// Ultralytics' cap on boxes entering NMS.
pub const MAX_NMS: usize = 30_000;

pub fn nms(mut candidates: Vec<Candidate>, iou_threshold: f32, max_det: usize) -> Vec<Candidate> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    candidates.truncate(MAX_NMS);
    let mut kept: Vec<Candidate> = Vec::new();
    for candidate in candidates {
        if kept.len() >= max_det {
            break;
        }
        let suppressed = kept
            .iter()
            .any(|k| k.class == candidate.class && iou(&k.bbox, &candidate.bbox) > iou_threshold);
        if !suppressed {
            kept.push(candidate);
        }
    }
    kept
}

pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = area(a) + area(b) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(bbox: [f32; 4], score: f32, class: usize) -> Candidate {
        Candidate { bbox, score, class }
    }

    #[test]
    fn suppresses_overlaps_within_a_class_only() {
        let out = nms(
            vec![
                c([0.0, 0.0, 10.0, 10.0], 0.8, 0),
                c([1.0, 1.0, 10.0, 10.0], 0.9, 0), // IoU 0.81 with the first
                c([1.0, 1.0, 10.0, 10.0], 0.7, 1), // other class survives
                c([20.0, 20.0, 30.0, 30.0], 0.6, 0),
            ],
            0.7,
            300,
        );
        let scores: Vec<f32> = out.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.9, 0.7, 0.6]);
    }

    #[test]
    fn threshold_is_strict_and_max_det_caps() {
        // IoU exactly 0.5: kept at threshold 0.5.
        let a = c([0.0, 0.0, 2.0, 1.0], 0.9, 0);
        let b = c([0.0, 0.0, 1.0, 1.0], 0.8, 0);
        assert!((iou(&a.bbox, &b.bbox) - 0.5).abs() < 1e-6);
        assert_eq!(nms(vec![a, b], 0.5, 300).len(), 2);
        assert_eq!(nms(vec![a, b], 0.4, 300).len(), 1);
        assert_eq!(nms(vec![a, b], 0.5, 1).len(), 1);
    }
}
