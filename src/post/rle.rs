//! CVAT's mask RLE (the `points` of a `mask` shape, cvat-contract.md §3.2).
//!
//! The crop of the mask inside its inclusive bounding box is read row-major
//! and written as alternating run lengths that always start with a run of
//! zeros (so a crop whose first pixel is set starts with a `0`), followed by
//! the bounds `[xtl, ytl, xbr, ybr]`. This is what cvat-sdk's `encode_mask`
//! and the UI's `mask2Rle` produce (`[0,0,0,1] → [3,1]`, `[1,1,0,0] → [0,2,2]`).
//!
//! Any non-zero pixel counts as set: datumaro's server-side encoder starts a
//! new run on *every* value change, so a mask mixing 1 and 255 would silently
//! shift every later run there. Normalising here keeps the output valid
//! whatever the model's mask values are.

/// Run lengths of a row-major mask, starting with a zero-run.
pub fn encode(mask: &[u8]) -> Vec<u32> {
    let mut runs = Vec::new();
    let mut rest = mask;
    let mut set = false;
    while !rest.is_empty() {
        // The predicate is the negation of the current run's value; `position`
        // on a byte slice compiles to a tight loop the optimiser vectorises.
        let len = if set {
            rest.iter().position(|&b| b == 0)
        } else {
            rest.iter().position(|&b| b != 0)
        }
        .unwrap_or(rest.len());
        runs.push(run_len(len));
        rest = &rest[len..];
        set = !set;
    }
    runs
}

/// Runs longer than `u32::MAX` pixels cannot come from an image the decoder accepts.
fn run_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// The `points` of a CVAT mask shape: RLE of the crop `bounds` (inclusive
/// `[xtl, ytl, xbr, ybr]`) of a `width`-wide row-major mask, then the bounds.
/// `None` when the bounds are inverted or fall outside the mask.
pub fn encode_cvat(mask: &[u8], width: usize, bounds: [u32; 4]) -> Option<Vec<u32>> {
    let [xtl, ytl, xbr, ybr] = bounds.map(|v| v as usize);
    if width == 0 || xtl > xbr || ytl > ybr || xbr >= width || (ybr + 1) * width > mask.len() {
        return None;
    }
    let mut runs: Vec<u32> = Vec::new();
    // Current run value and length, carried across row boundaries.
    let (mut set, mut len) = (false, 0usize);
    for y in ytl..=ybr {
        let mut row = &mask[y * width + xtl..=y * width + xbr];
        while !row.is_empty() {
            let same = if set {
                row.iter().position(|&b| b == 0)
            } else {
                row.iter().position(|&b| b != 0)
            };
            match same {
                Some(n) => {
                    runs.push(run_len(len + n));
                    row = &row[n..];
                    set = !set;
                    len = 0;
                }
                None => {
                    len += row.len();
                    row = &[];
                }
            }
        }
    }
    runs.push(run_len(len));
    runs.extend(bounds);
    Some(runs)
}

/// Expands run lengths back into a 0/1 mask of `len` pixels; `None` when the
/// runs do not add up to exactly `len`.
pub fn decode(runs: &[u32], len: usize) -> Option<Vec<u8>> {
    let mut mask = Vec::with_capacity(len);
    for (i, &run) in runs.iter().enumerate() {
        let run = run as usize;
        if mask.len() + run > len {
            return None;
        }
        mask.resize(mask.len() + run, (i % 2) as u8);
    }
    (mask.len() == len).then_some(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_cvat_ui_examples() {
        assert_eq!(encode(&[0, 0, 0, 1]), vec![3, 1]);
        assert_eq!(encode(&[1, 1, 0, 0]), vec![0, 2, 2]);
        assert_eq!(encode(&[255, 0, 255]), vec![0, 1, 1, 1]);
        assert_eq!(encode(&[0, 0]), vec![2]);
        assert_eq!(encode(&[]), Vec::<u32>::new());
    }

    #[test]
    fn mixed_nonzero_values_are_one_run() {
        assert_eq!(encode(&[0, 1, 255, 7, 0]), vec![1, 3, 1]);
    }

    #[test]
    fn cvat_points_encode_the_inclusive_crop_then_bounds() {
        // 4x3 mask, object at x 1..=2, y 1..=2 (inclusive).
        #[rustfmt::skip]
        let mask = [
            0, 0, 0, 0,
            0, 1, 1, 0,
            0, 0, 1, 0,
        ];
        assert_eq!(
            encode_cvat(&mask, 4, [1, 1, 2, 2]).unwrap(),
            vec![0, 2, 1, 1, 1, 1, 2, 2]
        );
        // Full frame: runs cross row boundaries.
        assert_eq!(
            encode_cvat(&mask, 4, [0, 0, 3, 2]).unwrap(),
            vec![5, 2, 3, 1, 1, 0, 0, 3, 2]
        );
        // The UI test's minimal mask: one all-set crop is `[0, w*h, bounds]`.
        let full = [1u8; 12];
        assert_eq!(
            encode_cvat(&full, 4, [0, 0, 3, 2]).unwrap(),
            vec![0, 12, 0, 0, 3, 2]
        );
    }

    #[test]
    fn rejects_bounds_outside_the_mask() {
        let mask = [0u8; 12];
        assert!(encode_cvat(&mask, 4, [0, 0, 4, 2]).is_none());
        assert!(encode_cvat(&mask, 4, [0, 0, 3, 3]).is_none());
        assert!(encode_cvat(&mask, 4, [2, 0, 1, 2]).is_none());
        assert!(encode_cvat(&mask, 0, [0, 0, 0, 0]).is_none());
    }

    #[test]
    fn crop_encoding_agrees_with_encoding_the_copied_crop() {
        // Pseudo-random blobs; compare against the straightforward copy + encode.
        let (w, h) = (37usize, 23usize);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mask: Vec<u8> = (0..w * h)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                u8::from(state % 5 < 2)
            })
            .collect();
        for bounds in [
            [0, 0, 36, 22],
            [3, 4, 20, 10],
            [36, 22, 36, 22],
            [0, 5, 0, 9],
        ] {
            let [x0, y0, x1, y1] = bounds.map(|v| v as usize);
            let crop: Vec<u8> = (y0..=y1)
                .flat_map(|y| mask[y * w + x0..=y * w + x1].iter().copied())
                .collect();
            let mut expected = encode(&crop);
            expected.extend(bounds);
            let got = encode_cvat(&mask, w, bounds).unwrap();
            assert_eq!(got, expected, "bounds {bounds:?}");
            let runs = &got[..got.len() - 4];
            assert_eq!(decode(runs, crop.len()).unwrap(), crop);
        }
    }

    #[test]
    fn decode_checks_the_total() {
        assert_eq!(decode(&[3, 1], 4).unwrap(), vec![0, 0, 0, 1]);
        assert_eq!(decode(&[0, 2, 2], 4).unwrap(), vec![1, 1, 0, 0]);
        assert!(decode(&[3, 1], 5).is_none());
        assert!(decode(&[3, 2], 4).is_none());
    }
}
