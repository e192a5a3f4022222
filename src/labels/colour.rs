//! Class colours: a fixed categorical palette, so class `k` looks the same in every plot and
//! every session (the colour is stored with the class, not recomputed from its position).

use std::fmt;
use std::sync::OnceLock;

/// An sRGB colour, written `#rrggbb` in the sidecar and the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Colour(pub [u8; 3]);

impl Colour {
    /// Parses `#rrggbb` (the `#` is optional, hex digits in either case).
    pub fn from_hex(text: &str) -> Option<Colour> {
        let digits = text.strip_prefix('#').unwrap_or(text);
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let channel = |i: usize| u8::from_str_radix(&digits[i..i + 2], 16).ok();
        Some(Colour([channel(0)?, channel(2)?, channel(4)?]))
    }

    /// `#rrggbb`, lower case.
    pub fn hex(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [r, g, b] = self.0;
        write!(f, "#{r:02x}{g:02x}{b:02x}")
    }
}

/// matplotlib's tab10: what scientists already associate with the first ten classes.
const TAB10: [[u8; 3]; 10] = [
    [0x1f, 0x77, 0xb4],
    [0xff, 0x7f, 0x0e],
    [0x2c, 0xa0, 0x2c],
    [0xd6, 0x27, 0x28],
    [0x94, 0x67, 0xbd],
    [0x8c, 0x56, 0x4b],
    [0xe3, 0x77, 0xc2],
    [0x7f, 0x7f, 0x7f],
    [0xbc, 0xbd, 0x22],
    [0x17, 0xbe, 0xcf],
];

/// Palette length; beyond it colours repeat (more classes than this are not distinguishable
/// by colour anyway).
pub const PALETTE_LEN: usize = 256;

/// The categorical palette: tab10, then a Glasbey-style extension — each further colour is the
/// candidate farthest (in CIELAB) from all colours chosen so far. Deterministic, built once.
pub fn palette() -> &'static [Colour] {
    static PALETTE: OnceLock<Vec<Colour>> = OnceLock::new();
    PALETTE.get_or_init(build_palette)
}

/// Colour `index` of the palette (wrapping past [`PALETTE_LEN`]).
pub fn palette_colour(index: usize) -> Colour {
    let palette = palette();
    palette[index % palette.len()]
}

fn build_palette() -> Vec<Colour> {
    let mut chosen: Vec<Colour> = TAB10.iter().map(|&rgb| Colour(rgb)).collect();

    // Candidates on a 16-level RGB grid, without colours too dark or too pale to read on
    // either a light or a dark plot background.
    const LEVELS: u8 = 16;
    const STEP: u8 = 255 / (LEVELS - 1);
    let mut candidates: Vec<(Colour, [f32; 3])> = Vec::new();
    for r in 0..LEVELS {
        for g in 0..LEVELS {
            for b in 0..LEVELS {
                let colour = Colour([r * STEP, g * STEP, b * STEP]);
                let lab = to_lab(colour);
                if (35.0..=88.0).contains(&lab[0]) {
                    candidates.push((colour, lab));
                }
            }
        }
    }

    // Distance from each candidate to its nearest chosen colour, updated as colours are added.
    let mut nearest_sq: Vec<f32> = candidates
        .iter()
        .map(|(_, lab)| {
            chosen
                .iter()
                .map(|&c| distance_sq(*lab, to_lab(c)))
                .fold(f32::INFINITY, f32::min)
        })
        .collect();

    while chosen.len() < PALETTE_LEN {
        let Some((best, _)) = nearest_sq
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
        else {
            break;
        };
        let (colour, lab) = candidates[best];
        chosen.push(colour);
        for (d, (_, other)) in nearest_sq.iter_mut().zip(&candidates) {
            *d = d.min(distance_sq(lab, *other));
        }
    }
    chosen
}

fn distance_sq(a: [f32; 3], b: [f32; 3]) -> f32 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// sRGB → CIELAB (D65 white).
fn to_lab(colour: Colour) -> [f32; 3] {
    let linear = colour.0.map(|c| {
        let c = f32::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    });
    let [r, g, b] = linear;
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.950_47;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.088_83;
    let f = |t: f32| {
        if t > 0.008_856 {
            t.cbrt()
        } else {
            7.787 * t + 16.0 / 116.0
        }
    };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let c = Colour([0x1f, 0x77, 0xb4]);
        assert_eq!(c.hex(), "#1f77b4");
        assert_eq!(Colour::from_hex("#1F77B4"), Some(c));
        assert_eq!(Colour::from_hex("1f77b4"), Some(c));
        for bad in [
            "",
            "#",
            "#1f77b",
            "#1f77b4ff",
            "#gg0000",
            "#+f77b4",
            "#1f77é",
        ] {
            assert_eq!(Colour::from_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn palette_starts_with_tab10_and_has_distinct_colours() {
        let palette = palette();
        assert_eq!(palette.len(), PALETTE_LEN);
        assert_eq!(palette[0].hex(), "#1f77b4");
        assert_eq!(palette[9].hex(), "#17becf");
        let mut seen = std::collections::HashSet::new();
        assert!(palette.iter().all(|c| seen.insert(*c)), "duplicate colour");
        // The extension stays well separated for the first few dozen classes.
        let lab: Vec<_> = palette[..40].iter().map(|&c| to_lab(c)).collect();
        for (i, a) in lab.iter().enumerate() {
            for b in &lab[i + 1..] {
                assert!(distance_sq(*a, *b).sqrt() > 10.0);
            }
        }
    }
}
