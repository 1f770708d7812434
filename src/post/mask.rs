//! Binary masks: bounds, largest component, polygons.
//!
//! CVAT's generic interactor reply is a crop of the mask plus its inclusive
//! bounds, and optionally a polygon; when the user converts masks to polygons
//! (or the UI draws the intermediate shape) it uses `points` as is. A mask
//! from SAM often has specks next to the object, so the polygon outlines only
//! the largest 8-connected component.

use image::{GrayImage, Luma};
use imageproc::{
    contours::{find_contours, BorderType},
    region_labelling::{connected_components, Connectivity},
};

/// A binary mask, one byte per pixel (non-zero = set), row-major.
#[derive(Debug, Clone, Copy)]
pub struct MaskView<'a> {
    pub width: u32,
    pub height: u32,
    pub data: &'a [u8],
}

impl MaskView<'_> {
    fn at(&self, x: u32, y: u32) -> bool {
        self.data[y as usize * self.width as usize + x as usize] != 0
    }

    /// Inclusive `[xtl, ytl, xbr, ybr]` of the set pixels; `None` when empty.
    pub fn bounds(&self) -> Option<[u32; 4]> {
        let w = self.width as usize;
        if w == 0 {
            return None;
        }
        let mut b: Option<[u32; 4]> = None;
        for (y, row) in self.data.chunks_exact(w).enumerate() {
            let (Some(first), Some(last)) = (
                row.iter().position(|&v| v != 0),
                row.iter().rposition(|&v| v != 0),
            ) else {
                continue;
            };
            let (y, first, last) = (y as u32, first as u32, last as u32);
            b = Some(match b {
                None => [first, y, last, y],
                Some([x0, y0, x1, _]) => [x0.min(first), y0, x1.max(last), y],
            });
        }
        b
    }

    /// Rows of the crop `bounds` with `on` for set pixels and 0 elsewhere.
    pub fn crop_rows(&self, bounds: [u32; 4], on: u8) -> Vec<Vec<u8>> {
        let [x0, y0, x1, y1] = bounds;
        (y0..=y1)
            .map(|y| {
                (x0..=x1)
                    .map(|x| if self.at(x, y) { on } else { 0 })
                    .collect()
            })
            .collect()
    }

    /// The outer border of the largest 8-connected component, simplified with
    /// Douglas–Peucker at `epsilon` pixels; points are pixel centres of the
    /// border. At least 3 points (a 1-pixel component becomes its square).
    pub fn largest_polygon(&self, epsilon: f64) -> Vec<[i32; 2]> {
        let Some([x0, y0, x1, y1]) = self.bounds() else {
            return Vec::new();
        };
        // A one-pixel frame of background keeps every border traceable.
        let (cw, ch) = (x1 - x0 + 3, y1 - y0 + 3);
        let crop = GrayImage::from_fn(cw, ch, |x, y| {
            let inside = (1..cw - 1).contains(&x) && (1..ch - 1).contains(&y);
            Luma([if inside && self.at(x0 + x - 1, y0 + y - 1) {
                255
            } else {
                0
            }])
        });
        let labels = connected_components(&crop, Connectivity::Eight, Luma([0u8]));
        let mut sizes: Vec<u32> = Vec::new();
        for p in labels.pixels() {
            let l = p.0[0] as usize;
            if l > 0 {
                if sizes.len() <= l {
                    sizes.resize(l + 1, 0);
                }
                sizes[l] += 1;
            }
        }
        // Ties go to the first component in raster order.
        let Some(best) = sizes
            .iter()
            .enumerate()
            .skip(1)
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
            .map(|(l, _)| l as u32)
        else {
            return Vec::new();
        };
        let component = GrayImage::from_fn(cw, ch, |x, y| {
            Luma([if labels.get_pixel(x, y).0[0] == best {
                255
            } else {
                0
            }])
        });
        let outer = find_contours::<i32>(&component)
            .into_iter()
            .find(|c| c.border_type == BorderType::Outer && c.parent.is_none());
        let (dx, dy) = (x0 as i32 - 1, y0 as i32 - 1);
        let border: Vec<[i32; 2]> = outer
            .map(|c| c.points.iter().map(|p| [p.x + dx, p.y + dy]).collect())
            .unwrap_or_default();
        let polygon = simplify_closed(&border, epsilon);
        if polygon.len() >= 3 {
            return polygon;
        }
        // Lines and single pixels: their bounding rectangle, one pixel wide at least.
        let xs = border.iter().map(|p| p[0]);
        let ys = border.iter().map(|p| p[1]);
        let (Some(l), Some(r), Some(t), Some(b)) =
            (xs.clone().min(), xs.max(), ys.clone().min(), ys.max())
        else {
            return Vec::new();
        };
        let (r, b) = (r.max(l + 1), b.max(t + 1));
        vec![[l, t], [r, t], [r, b], [l, b]]
    }
}

/// Douglas–Peucker for a closed ring, iterative (a long border must not
/// recurse deeply on a worker thread's stack). The ring is split at the
/// vertex farthest from the first one, then each half is simplified.
pub fn simplify_closed(points: &[[i32; 2]], epsilon: f64) -> Vec<[i32; 2]> {
    let n = points.len();
    if n <= 3 {
        return points.to_vec();
    }
    let d2 = |a: [i32; 2], b: [i32; 2]| {
        let (dx, dy) = (f64::from(a[0] - b[0]), f64::from(a[1] - b[1]));
        dx * dx + dy * dy
    };
    let far = (1..n)
        .max_by(|&a, &b| d2(points[0], points[a]).total_cmp(&d2(points[0], points[b])))
        .unwrap_or(n / 2);
    let mut keep = vec![false; n];
    keep[0] = true;
    keep[far] = true;
    // Segments as index ranges over the ring; index `n` is point 0 again.
    let mut stack = vec![(0usize, far), (far, n)];
    while let Some((a, b)) = stack.pop() {
        let (pa, pb) = (points[a % n], points[b % n]);
        let mut best = (0.0, 0);
        for (i, &p) in points.iter().enumerate().take(b).skip(a + 1) {
            let d = segment_distance(p, pa, pb);
            if d > best.0 {
                best = (d, i);
            }
        }
        if best.0 > epsilon {
            keep[best.1] = true;
            stack.push((a, best.1));
            stack.push((best.1, b));
        }
    }
    points
        .iter()
        .zip(keep)
        .filter_map(|(p, k)| k.then_some(*p))
        .collect()
}

fn segment_distance(p: [i32; 2], a: [i32; 2], b: [i32; 2]) -> f64 {
    let (px, py) = (f64::from(p[0]), f64::from(p[1]));
    let (ax, ay) = (f64::from(a[0]), f64::from(a[1]));
    let (bx, by) = (f64::from(b[0]), f64::from(b[1]));
    let (vx, vy) = (bx - ax, by - ay);
    let len2 = vx * vx + vy * vy;
    let t = if len2 > 0.0 {
        (((px - ax) * vx + (py - ay) * vy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (cx, cy) = (ax + t * vx, ay + t * vy);
    ((px - cx).powi(2) + (py - cy).powi(2)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(w: u32, h: u32, set: impl Fn(u32, u32) -> bool) -> Vec<u8> {
        (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| u8::from(set(x, y)))
            .collect()
    }

    #[test]
    fn bounds_are_inclusive_and_crop_matches() {
        let data = mask(10, 8, |x, y| (2..=5).contains(&x) && (3..=4).contains(&y));
        let m = MaskView {
            width: 10,
            height: 8,
            data: &data,
        };
        assert_eq!(m.bounds(), Some([2, 3, 5, 4]));
        assert_eq!(m.crop_rows([2, 3, 5, 4], 255), vec![vec![255; 4]; 2]);
        let empty = vec![0u8; 80];
        assert_eq!(
            MaskView {
                width: 10,
                height: 8,
                data: &empty
            }
            .bounds(),
            None
        );
    }

    #[test]
    fn polygon_outlines_the_largest_component_only() {
        // A 20x10 rectangle and a 3x3 speck elsewhere.
        let data = mask(60, 40, |x, y| {
            ((10..30).contains(&x) && (5..15).contains(&y))
                || ((50..53).contains(&x) && (30..33).contains(&y))
        });
        let m = MaskView {
            width: 60,
            height: 40,
            data: &data,
        };
        let mut poly = m.largest_polygon(1.0);
        poly.sort();
        assert_eq!(poly, vec![[10, 5], [10, 14], [29, 5], [29, 14]]);
    }

    #[test]
    fn degenerate_components_still_give_a_polygon() {
        let data = mask(5, 5, |x, y| x == 2 && y == 2);
        let poly = MaskView {
            width: 5,
            height: 5,
            data: &data,
        }
        .largest_polygon(1.0);
        assert_eq!(poly, vec![[2, 2], [3, 2], [3, 3], [2, 3]]);
        let data = mask(9, 5, |x, y| y == 1 && x >= 2);
        let poly = MaskView {
            width: 9,
            height: 5,
            data: &data,
        }
        .largest_polygon(1.0);
        assert_eq!(poly.len(), 4);
    }

    #[test]
    fn simplification_keeps_corners_and_drops_collinear_points() {
        let mut ring = Vec::new();
        for x in 0..10 {
            ring.push([x, 0]);
        }
        for y in 0..10 {
            ring.push([10, y]);
        }
        for x in (1..=10).rev() {
            ring.push([x, 10]);
        }
        for y in (1..=10).rev() {
            ring.push([0, y]);
        }
        let mut s = simplify_closed(&ring, 0.5);
        s.sort();
        assert_eq!(s, vec![[0, 0], [0, 10], [10, 0], [10, 10]]);
    }
}
