//! The view transform of the latent map: data space (y up) to screen points (y down), with one
//! isotropic scale so clusters keep their shape.

use egui::{Pos2, Rect, Vec2, pos2, vec2};

/// Screen points per data unit are kept inside this range so zooming can neither collapse the
/// map to nothing nor overflow `f32`.
const MIN_POINTS_PER_UNIT: f32 = 1e-6;
const MAX_POINTS_PER_UNIT: f32 = 1e9;

/// Fraction of the plot left empty around the data after "fit view".
const FIT_MARGIN: f32 = 0.05;

/// Where the plot looks: the data point shown at the centre of the plot rect, and the zoom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Data coordinates shown at the centre of the plot rect.
    pub center: [f32; 2],
    /// Screen points per data unit, the same on both axes.
    pub points_per_unit: f32,
}

impl Default for View {
    fn default() -> Self {
        Self {
            center: [0.0, 0.0],
            points_per_unit: 1.0,
        }
    }
}

impl View {
    /// The view that shows `bounds` (data space) inside `rect` with a small margin.
    /// Degenerate bounds (one point, a line) get a unit extent so the scale stays finite.
    pub fn fit(bounds: Rect, rect: Rect) -> Self {
        let extent = vec2(
            if bounds.width() > 0.0 {
                bounds.width()
            } else {
                1.0
            },
            if bounds.height() > 0.0 {
                bounds.height()
            } else {
                1.0
            },
        );
        let usable = rect.size() * (1.0 - 2.0 * FIT_MARGIN);
        let points_per_unit = (usable.x / extent.x).min(usable.y / extent.y);
        Self {
            center: [bounds.center().x, bounds.center().y],
            points_per_unit: clamp_scale(points_per_unit),
        }
    }

    pub fn data_to_screen(&self, rect: Rect, data: [f32; 2]) -> Pos2 {
        let c = rect.center();
        pos2(
            c.x + (data[0] - self.center[0]) * self.points_per_unit,
            c.y - (data[1] - self.center[1]) * self.points_per_unit,
        )
    }

    pub fn screen_to_data(&self, rect: Rect, screen: Pos2) -> [f32; 2] {
        let c = rect.center();
        [
            self.center[0] + (screen.x - c.x) / self.points_per_unit,
            self.center[1] - (screen.y - c.y) / self.points_per_unit,
        ]
    }

    /// Moves the map by `delta_points` on screen (the content follows the pointer).
    pub fn pan(&mut self, delta_points: Vec2) {
        self.center[0] -= delta_points.x / self.points_per_unit;
        self.center[1] += delta_points.y / self.points_per_unit;
    }

    /// Zooms by `factor` (> 1 zooms in) keeping the data point under `pointer` where it is.
    pub fn zoom_about(&mut self, rect: Rect, pointer: Pos2, factor: f32) {
        if !(factor.is_finite() && factor > 0.0) {
            return;
        }
        let anchor = self.screen_to_data(rect, pointer);
        self.points_per_unit = clamp_scale(self.points_per_unit * factor);
        let offset = pointer - rect.center();
        self.center = [
            anchor[0] - offset.x / self.points_per_unit,
            anchor[1] + offset.y / self.points_per_unit,
        ];
    }
}

fn clamp_scale(points_per_unit: f32) -> f32 {
    if points_per_unit.is_finite() {
        points_per_unit.clamp(MIN_POINTS_PER_UNIT, MAX_POINTS_PER_UNIT)
    } else {
        1.0
    }
}

/// Bounding box of the finite positions, `None` when there are none.
pub fn data_bounds(positions: &[[f32; 2]]) -> Option<Rect> {
    let mut bounds = Rect::NOTHING;
    for p in positions
        .iter()
        .filter(|p| p[0].is_finite() && p[1].is_finite())
    {
        bounds.extend_with(pos2(p[0], p[1]));
    }
    // `NOTHING` is inverted until a point extends it; a single point is a valid bound.
    (bounds.min.x <= bounds.max.x).then_some(bounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plot_rect() -> Rect {
        Rect::from_min_size(pos2(40.0, 25.0), vec2(640.0, 400.0))
    }

    #[test]
    fn data_screen_round_trip() {
        let view = View {
            center: [3.5, -2.0],
            points_per_unit: 37.0,
        };
        let rect = plot_rect();
        for &data in &[[0.0, 0.0], [3.5, -2.0], [-10.25, 7.75], [100.0, -100.0]] {
            let back = view.screen_to_data(rect, view.data_to_screen(rect, data));
            assert!(
                (back[0] - data[0]).abs() < 1e-4 && (back[1] - data[1]).abs() < 1e-4,
                "{data:?} -> {back:?}"
            );
        }
        // The centre of the view is the centre of the rect, and data y points up.
        assert_eq!(view.data_to_screen(rect, view.center), rect.center());
        assert!(view.data_to_screen(rect, [3.5, -1.0]).y < rect.center().y);
    }

    #[test]
    fn zoom_about_pointer_keeps_the_data_under_it() {
        let rect = plot_rect();
        let mut view = View {
            center: [1.0, 2.0],
            points_per_unit: 10.0,
        };
        let pointer = pos2(500.0, 100.0);
        let before = view.screen_to_data(rect, pointer);
        for factor in [1.5, 0.3, 7.0] {
            view.zoom_about(rect, pointer, factor);
            let after = view.screen_to_data(rect, pointer);
            assert!((after[0] - before[0]).abs() < 1e-3 && (after[1] - before[1]).abs() < 1e-3);
        }
        assert!((view.points_per_unit - 10.0 * 1.5 * 0.3 * 7.0).abs() < 1e-3);
    }

    #[test]
    fn pan_moves_content_with_the_pointer() {
        let rect = plot_rect();
        let mut view = View {
            center: [0.0, 0.0],
            points_per_unit: 4.0,
        };
        let before = view.data_to_screen(rect, [1.0, 1.0]);
        view.pan(vec2(12.0, -8.0));
        let after = view.data_to_screen(rect, [1.0, 1.0]);
        assert!((after - before - vec2(12.0, -8.0)).length() < 1e-4);
    }

    #[test]
    fn fit_shows_all_data_inside_the_rect() {
        let rect = plot_rect();
        let positions = [[-3.0, 1.0], [5.0, 2.0], [0.0, -4.0], [f32::NAN, 0.0]];
        let bounds = data_bounds(&positions).expect("finite points");
        assert_eq!(bounds, Rect::from_min_max(pos2(-3.0, -4.0), pos2(5.0, 2.0)));
        let view = View::fit(bounds, rect);
        for p in &positions[..3] {
            assert!(rect.contains(view.data_to_screen(rect, *p)));
        }
        // A single point still gives a finite view centred on it.
        let one = View::fit(data_bounds(&[[2.0, 2.0]]).expect("one point"), rect);
        assert_eq!(one.center, [2.0, 2.0]);
        assert!(one.points_per_unit.is_finite());
        assert!(data_bounds(&[[f32::NAN, 1.0]]).is_none());
    }
}
