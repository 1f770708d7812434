//! Deterministic synthetic tracking sequences built from the shared test photos.
//!
//! Each sequence simulates a 1280x720 camera looking at one photo (mirror-padded
//! beyond its borders, so the background is real photo texture including mirrored
//! copies of the object — realistic distractors). Over 60 frames the camera pans
//! (the object's centre moves ~±280 px horizontally and ~±100 px vertically along
//! smooth curves), zooms (object scale 0.77x..1.3x of the base scale), the exposure
//! changes (gain 0.7..1.3 plus an offset), a grey vertical bar (30 % of the object's
//! width) sweeps across the object during frames 20..=35, and mild deterministic
//! pixel noise is added. The ground truth is exact: the object box in photo
//! coordinates mapped through the same camera transform used for rendering, then
//! clipped to the frame.
//!
//! Frames are rendered lazily with [`Sequence::frame`] (60 full-HD-ish frames of three
//! sequences would otherwise hold ~0.5 GB).

use std::path::Path;

use image::RgbImage;

/// Frame size of the generated sequences.
pub const FRAME_W: u32 = 1280;
/// Frame size of the generated sequences.
pub const FRAME_H: u32 = 720;
/// Number of frames per sequence.
pub const LEN: usize = 60;

/// First and last frame (inclusive) of the occluding bar.
pub const OCCLUSION_FRAMES: (usize, usize) = (20, 35);

#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    #[error("cannot read test photo {path}: {source}")]
    Image {
        path: String,
        #[source]
        source: image::ImageError,
    },
}

/// One synthetic sequence: `truth[i]` is the exact `[xtl, ytl, xbr, ybr]` of the object in
/// `frame(i)`.
pub struct Sequence {
    pub name: String,
    pub truth: Vec<[f32; 4]>,
    photo: RgbImage,
    /// Object box in photo coordinates.
    object: [f32; 4],
    /// Base scale (output px per photo px).
    base_scale: f32,
    cams: Vec<Camera>,
}

#[derive(Clone, Copy, Debug)]
struct Camera {
    /// Where the object's centre appears in the frame.
    px: f32,
    py: f32,
    /// Output px per photo px.
    scale: f32,
    gain: f32,
    offset: f32,
}

struct Spec {
    name: &'static str,
    file: &'static str,
    /// Object box in photo pixel coordinates, picked by eye.
    object: [f32; 4],
    /// Output px per photo px at zoom 1.
    base_scale: f32,
    /// Phase offsets so the sequences do not all move identically.
    phase: f32,
}

const SPECS: [Spec; 3] = [
    // chelsea.png 451x300: the cat's face (eyes, nose, mouth).
    Spec {
        name: "chelsea-cat",
        file: "chelsea.png",
        object: [95.0, 30.0, 375.0, 290.0],
        base_scale: 1.25,
        phase: 0.0,
    },
    // coffee.png 600x400: the cup with its handle (not the saucer).
    Spec {
        name: "coffee-cup",
        file: "coffee.png",
        object: [170.0, 16.0, 410.0, 310.0],
        base_scale: 1.1,
        phase: 1.3,
    },
    // astronaut.png 512x512: the person (head to the bottom edge, without the helmet on the right).
    Spec {
        name: "astronaut-person",
        file: "astronaut.png",
        object: [20.0, 14.0, 365.0, 512.0],
        base_scale: 0.8,
        phase: 2.6,
    },
];

/// Generate the three standard sequences from `shared_images_dir` (the folder holding
/// `chelsea.png`, `coffee.png`, `astronaut.png`).
pub fn sequences(shared_images_dir: &Path) -> Result<Vec<Sequence>, SyntheticError> {
    SPECS
        .iter()
        .map(|spec| {
            let path = shared_images_dir.join(spec.file);
            let photo = image::open(&path)
                .map_err(|source| SyntheticError::Image {
                    path: path.display().to_string(),
                    source,
                })?
                .to_rgb8();
            Ok(Sequence::new(spec, photo))
        })
        .collect()
}

impl Sequence {
    fn new(spec: &Spec, photo: RgbImage) -> Sequence {
        let tau = std::f32::consts::TAU;
        let [x0, y0, x1, y1] = spec.object;
        let (ow, oh) = (x1 - x0, y1 - y0);
        let mut cams = Vec::with_capacity(LEN);
        let mut truth = Vec::with_capacity(LEN);
        for t in 0..LEN {
            let ph = t as f32 / (LEN - 1) as f32;
            let zoom = 1.3f32.powf((tau * ph).sin());
            let cam = Camera {
                px: FRAME_W as f32 / 2.0 + 280.0 * (tau * ph + spec.phase).sin()
                    - 280.0 * spec.phase.sin(),
                py: FRAME_H as f32 / 2.0 + 100.0 * (1.5 * tau * ph + spec.phase).sin()
                    - 100.0 * spec.phase.sin(),
                scale: spec.base_scale * zoom,
                gain: 1.0 + 0.3 * (2.0 * tau * ph + 1.0 + spec.phase).sin(),
                offset: 12.0 * (tau * ph * 0.7 + spec.phase).cos(),
            };
            let hw = 0.5 * ow * cam.scale;
            let hh = 0.5 * oh * cam.scale;
            truth.push(clip([cam.px - hw, cam.py - hh, cam.px + hw, cam.py + hh]));
            cams.push(cam);
        }
        Sequence {
            name: spec.name.to_string(),
            truth,
            photo,
            object: spec.object,
            base_scale: spec.base_scale,
            cams,
        }
    }

    pub fn len(&self) -> usize {
        self.cams.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cams.is_empty()
    }

    /// The object's box in photo coordinates and the base scale (for reference).
    pub fn object_in_photo(&self) -> ([f32; 4], f32) {
        (self.object, self.base_scale)
    }

    /// Render frame `i` (0-based). Panics if `i >= len()` (test helper).
    pub fn frame(&self, i: usize) -> RgbImage {
        let cam = self.cams[i];
        let [x0, y0, x1, y1] = self.object;
        let (ocx, ocy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
        let (pw, ph) = (self.photo.width() as i64, self.photo.height() as i64);
        let src = self.photo.as_raw();
        let inv = 1.0 / cam.scale;
        // Occluding bar (frame x range), sweeping left to right across the object box.
        let bar = if (OCCLUSION_FRAMES.0..=OCCLUSION_FRAMES.1).contains(&i) {
            let [bx0, _, bx1, _] = self.truth[i];
            let bw = 0.3 * (bx1 - bx0);
            let f =
                (i - OCCLUSION_FRAMES.0) as f32 / (OCCLUSION_FRAMES.1 - OCCLUSION_FRAMES.0) as f32;
            let start = bx0 - bw + (bx1 - bx0 + bw) * f;
            Some((start, start + bw))
        } else {
            None
        };
        let mut out = RgbImage::new(FRAME_W, FRAME_H);
        let buf: &mut [u8] = &mut out;
        for v in 0..FRAME_H as usize {
            let sy = ocy + (v as f32 + 0.5 - cam.py) * inv - 0.5;
            let fy = sy.floor();
            let wy = sy - fy;
            let ya = reflect(fy as i64, ph);
            let yb = reflect(fy as i64 + 1, ph);
            for u in 0..FRAME_W as usize {
                let o = (v * FRAME_W as usize + u) * 3;
                let uc = u as f32 + 0.5;
                if let Some((b0, b1)) = bar {
                    if uc >= b0 && uc < b1 {
                        let n = noise(i, u, v);
                        buf[o] = (128.0 + n).clamp(0.0, 255.0) as u8;
                        buf[o + 1] = (128.0 + n).clamp(0.0, 255.0) as u8;
                        buf[o + 2] = (128.0 + n).clamp(0.0, 255.0) as u8;
                        continue;
                    }
                }
                let sx = ocx + (uc - cam.px) * inv - 0.5;
                let fx = sx.floor();
                let wx = sx - fx;
                let xa = reflect(fx as i64, pw);
                let xb = reflect(fx as i64 + 1, pw);
                let n = noise(i, u, v);
                for c in 0..3 {
                    let p = |x: usize, y: usize| src[(y * pw as usize + x) * 3 + c] as f32;
                    let top = p(xa, ya) * (1.0 - wx) + p(xb, ya) * wx;
                    let bot = p(xa, yb) * (1.0 - wx) + p(xb, yb) * wx;
                    let val = (top * (1.0 - wy) + bot * wy) * cam.gain + cam.offset + n;
                    buf[o + c] = val.round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        out
    }
}

/// Mirror index `i` into `0..n` (period 2n, edge pixel not repeated twice... it is: symmetric).
fn reflect(i: i64, n: i64) -> usize {
    if n <= 1 {
        return 0;
    }
    let p = 2 * n;
    let m = i.rem_euclid(p);
    (if m < n { m } else { p - 1 - m }) as usize
}

/// Deterministic zero-mean noise in [-3, 3].
fn noise(t: usize, u: usize, v: usize) -> f32 {
    let mut h = (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (u as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (v as u64).wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    ((h & 0xFF) as f32 / 255.0 - 0.5) * 6.0
}

fn clip(r: [f32; 4]) -> [f32; 4] {
    [
        r[0].clamp(0.0, FRAME_W as f32),
        r[1].clamp(0.0, FRAME_H as f32),
        r[2].clamp(0.0, FRAME_W as f32),
        r[3].clamp(0.0, FRAME_H as f32),
    ]
}
