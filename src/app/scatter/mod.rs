//! The latent-map scatter widget: up to ~135,000 points, pan/zoom, hover, and brushing
//! (rectangle or lasso) to select clusters.
//!
//! Two renderers behind one widget: [`ScatterBackend::Gpu`] draws instanced quads with our own
//! WGSL shader through an `egui_wgpu` paint callback (register it once with [`register_gpu`]);
//! [`ScatterBackend::Cpu`] splats the points into one texture, for the glow renderer on
//! software GL.
//!
//! Controls: left-drag brushes in the current [`BrushMode`], right- or middle-drag pans, the
//! wheel zooms about the pointer, double-click fits the view, R / L pick the brush mode while
//! the plot is hovered, Esc cancels a brush. Shift adds to the selection, Ctrl/Cmd subtracts.

mod cpu;
mod gpu;
mod grid;
mod hit;
mod view;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use eframe::egui_wgpu;
use egui::{
    Color32, ColorImage, Id, Key, PointerButton, Pos2, Rect, Sense, Shape, Stroke, TextureHandle,
    TextureOptions, Ui, pos2, vec2,
};

pub use gpu::{register_gpu, register_gpu_with};
pub use view::View;

use cpu::SplatParams;
use gpu::{GpuPoints, ScatterCallback, Uniforms};
use grid::SpatialGrid;

/// Length of the transition after `set_points(.., Some(from))`.
const ANIMATION_SECS: f64 = 0.6;
/// A point is hovered when the pointer is this close to it.
const HOVER_RADIUS_PTS: f32 = 6.0;
/// New lasso vertices are taken once the pointer has moved this far.
const LASSO_STEP_PTS: f32 = 2.0;
/// Wheel zoom: the scale multiplies by e^(this × scrolled points).
const ZOOM_PER_SCROLL_PT: f32 = 0.002;
/// The CPU splat image is scaled down beyond this many pixels (a 4K plot would cost ~2×).
const MAX_SPLAT_PIXELS: usize = 2048 * 2048;
const DEFAULT_POINT_SIZE_PTS: f32 = 3.0;
/// Colour for points the caller gave no colour for.
const MISSING_COLOUR: Color32 = Color32::GRAY;

/// Which renderer draws the points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScatterBackend {
    /// Instanced quads through a wgpu paint callback (needs [`register_gpu`]).
    Gpu,
    /// Points splatted into one texture on the CPU (any renderer).
    Cpu,
}

/// The shape a left-drag draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BrushMode {
    #[default]
    Rectangle,
    Lasso,
}

/// How a click or brush combines with the current selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionOp {
    Replace,
    Add,
    Subtract,
}

impl SelectionOp {
    /// Shift adds, Ctrl (Cmd on macOS) subtracts, otherwise the selection is replaced.
    pub fn from_modifiers(modifiers: egui::Modifiers) -> Self {
        if modifiers.shift {
            Self::Add
        } else if modifiers.command {
            Self::Subtract
        } else {
            Self::Replace
        }
    }
}

/// What happened to the plot this frame.
pub struct ScatterResponse {
    pub response: egui::Response,
    /// Nearest point under the pointer (within a few points on screen).
    pub hovered: Option<usize>,
    /// A click on a point.
    pub clicked: Option<(usize, SelectionOp)>,
    /// A finished rectangle or lasso, with the indices inside it (ascending). A plain click on
    /// empty space reports an empty `Replace`, i.e. "clear the selection".
    pub brushed: Option<(Vec<usize>, SelectionOp)>,
}

/// The points and everything derived from them.
struct Points {
    /// Where the points are (data space), and where an animation starts from (the same `Arc`
    /// when not animating).
    positions: Arc<Vec<[f32; 2]>>,
    from: Arc<Vec<[f32; 2]>>,
    /// One colour per position.
    colours: Arc<Vec<Color32>>,
    /// Globally unique revisions, so GPU buffers and the CPU image know when to refresh.
    positions_rev: u64,
    colours_rev: u64,
    bounds: Option<Rect>,
    /// Built on the first hover after the positions change.
    grid: Option<SpatialGrid>,
}

impl Default for Points {
    fn default() -> Self {
        let empty = Arc::new(Vec::new());
        Self {
            positions: empty.clone(),
            from: empty,
            colours: Arc::new(Vec::new()),
            positions_rev: next_revision(),
            colours_rev: next_revision(),
            bounds: None,
            grid: None,
        }
    }
}

/// A brush being drawn, in data space (so zooming mid-brush keeps it on the data).
enum Brush {
    Rectangle { start: [f32; 2], end: [f32; 2] },
    Lasso { vertices: Vec<[f32; 2]> },
}

/// The last CPU splat and what it was made from.
#[derive(Default)]
struct CpuImage {
    texture: Option<TextureHandle>,
    made_from: Option<(SplatParams, u64, u64)>,
}

/// The scatter widget's state; keep one per plot across frames.
pub struct ScatterPlot {
    id: Id,
    points: Points,
    view: View,
    /// Fit the view to the data at the next `show` that has data.
    fit_pending: bool,
    has_fitted: bool,
    /// The user zoomed or panned since the last fit: the view is theirs, new layouts keep it.
    view_is_users: bool,
    brush_mode: BrushMode,
    brush: Option<Brush>,
    /// Start time of the running animation; `Some(None)` until the first frame shows it.
    animation: Option<Option<f64>>,
    point_size_pts: f32,
    cpu_image: CpuImage,
}

fn next_revision() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl ScatterPlot {
    pub fn new(id: Id) -> Self {
        Self {
            id,
            points: Points::default(),
            view: View::default(),
            fit_pending: true,
            has_fitted: false,
            view_is_users: false,
            brush_mode: BrushMode::default(),
            brush: None,
            animation: None,
            point_size_pts: DEFAULT_POINT_SIZE_PTS,
            cpu_image: CpuImage::default(),
        }
    }

    /// New positions (data space) and colours, one per point. With `animate_from` (same
    /// length) the points glide from there over ~0.6 s. The first call that brings points
    /// fits the view to them.
    pub fn set_points(
        &mut self,
        positions: Arc<Vec<[f32; 2]>>,
        colours: Arc<Vec<Color32>>,
        animate_from: Option<Arc<Vec<[f32; 2]>>>,
    ) {
        let from = match animate_from {
            Some(from) if from.len() == positions.len() => {
                self.animation = Some(None);
                from
            }
            _ => {
                self.animation = None;
                positions.clone()
            }
        };
        self.points = Points {
            bounds: view::data_bounds(&positions),
            colours: one_colour_each(colours, positions.len()),
            positions,
            from,
            positions_rev: next_revision(),
            colours_rev: next_revision(),
            grid: None,
        };
        if !self.has_fitted {
            self.fit_pending = true;
        }
    }

    /// New colours for the same points (selection dimming, another colour mode).
    pub fn set_colours(&mut self, colours: Arc<Vec<Color32>>) {
        self.points.colours = one_colour_each(colours, self.points.positions.len());
        self.points.colours_rev = next_revision();
    }

    pub fn point_count(&self) -> usize {
        self.points.positions.len()
    }

    pub fn brush_mode(&self) -> BrushMode {
        self.brush_mode
    }

    pub fn set_brush_mode(&mut self, mode: BrushMode) {
        self.brush_mode = mode;
    }

    /// Fits the view to the data at the next frame.
    pub fn reset_view(&mut self) {
        self.fit_pending = true;
    }

    /// Fits the view to the data at the next frame unless the user has zoomed or panned since
    /// the last fit: warm-started layouts drift, and the map must not wander out of view.
    pub fn follow_data(&mut self) {
        if !self.view_is_users {
            self.fit_pending = true;
        }
    }

    pub fn view(&self) -> View {
        self.view
    }

    pub fn set_view(&mut self, view: View) {
        self.view = view;
        self.fit_pending = false;
        self.has_fitted = true;
    }

    /// Point diameter on screen, in points.
    pub fn point_size_pts(&self) -> f32 {
        self.point_size_pts
    }

    pub fn set_point_size_pts(&mut self, size_pts: f32) {
        self.point_size_pts = size_pts.clamp(0.5, 32.0);
    }

    /// Screen position of a data point in the plot last shown in `plot_rect`
    /// (`ScatterResponse::response.rect`).
    pub fn data_to_screen(&self, plot_rect: Rect, data: [f32; 2]) -> Pos2 {
        self.view.data_to_screen(plot_rect, data)
    }

    pub fn screen_to_data(&self, plot_rect: Rect, screen: Pos2) -> [f32; 2] {
        self.view.screen_to_data(plot_rect, screen)
    }

    /// Brush mode buttons, fit view, point size, and the modifier hint.
    pub fn toolbar(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.brush_mode, BrushMode::Rectangle, "Rectangle [R]")
                .on_hover_text("Left-drag selects the points in a rectangle");
            ui.selectable_value(&mut self.brush_mode, BrushMode::Lasso, "Lasso [L]")
                .on_hover_text("Left-drag draws a free-hand outline");
            ui.separator();
            if ui
                .button("Fit view")
                .on_hover_text("Or double-click the plot")
                .clicked()
            {
                self.reset_view();
            }
            ui.add(egui::Slider::new(&mut self.point_size_pts, 1.0..=12.0).text("Point size"));
            ui.separator();
            ui.weak("Shift add · Ctrl subtract");
        });
    }

    /// Shows the plot in all the available space.
    pub fn show(&mut self, ui: &mut Ui, backend: ScatterBackend) -> ScatterResponse {
        let mut size = ui.available_size();
        if !(size.x.is_finite() && size.y.is_finite()) {
            size = vec2(480.0, 360.0); // inside an unbounded layout (a scroll area)
        }
        let (rect, response) = ui.allocate_exact_size(size, Sense::click_and_drag());
        if self.fit_pending {
            self.fit_to(rect);
        }
        let t = self.animation_t(ui);
        let (clicked, brushed) = self.interact(ui, rect, &response);
        let hovered = match (response.hover_pos(), &self.brush) {
            (Some(pointer), None) => self.point_at(rect, pointer),
            _ => None,
        };

        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, ui.visuals().extreme_bg_color);
        match backend {
            ScatterBackend::Gpu => self.paint_gpu(ui, &painter, rect, t),
            ScatterBackend::Cpu => self.paint_cpu(ui, &painter, rect, t),
        }
        let outline = Stroke::new(1.5, ui.visuals().strong_text_color());
        if let Some(i) = hovered {
            let (a, b) = (self.points.from[i], self.points.positions[i]);
            let shown = [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t];
            let centre = self.view.data_to_screen(rect, shown);
            painter.circle_stroke(centre, self.point_size_pts * 0.5 + 2.5, outline);
        }
        self.paint_brush(ui, &painter, rect, outline);

        ScatterResponse {
            response,
            hovered,
            clicked,
            brushed,
        }
    }

    /// Fits the view to the data now, or as soon as there is data and room for it.
    fn fit_to(&mut self, rect: Rect) {
        self.fit_pending = true;
        if rect.is_positive()
            && let Some(bounds) = self.points.bounds
        {
            self.view = View::fit(bounds, rect);
            self.fit_pending = false;
            self.has_fitted = true;
            self.view_is_users = false;
        }
    }

    /// Eased animation position in 0..=1 (1 when idle); keeps frames coming while it runs.
    fn animation_t(&mut self, ui: &Ui) -> f32 {
        let Some(start) = &mut self.animation else {
            return 1.0;
        };
        let now = ui.input(|i| i.time);
        let elapsed = now - *start.get_or_insert(now);
        let linear = (elapsed / ANIMATION_SECS).clamp(0.0, 1.0) as f32;
        if linear >= 1.0 {
            self.animation = None;
        } else {
            ui.ctx().request_repaint();
        }
        linear * linear * (3.0 - 2.0 * linear) // smoothstep
    }

    /// Pan, zoom, keys and brushing; returns a click on a point and a finished brush.
    #[allow(clippy::type_complexity)]
    fn interact(
        &mut self,
        ui: &Ui,
        rect: Rect,
        response: &egui::Response,
    ) -> (
        Option<(usize, SelectionOp)>,
        Option<(Vec<usize>, SelectionOp)>,
    ) {
        let (op, scroll_pts, zoom, press_origin) = ui.input(|i| {
            (
                SelectionOp::from_modifiers(i.modifiers),
                i.smooth_scroll_delta.y,
                i.zoom_delta(),
                i.pointer.press_origin(),
            )
        });

        if response.hovered()
            && let Some(pointer) = response.hover_pos()
        {
            let factor = (scroll_pts * ZOOM_PER_SCROLL_PT).exp() * zoom;
            if factor != 1.0 {
                self.view.zoom_about(rect, pointer, factor);
                self.view_is_users = true;
            }
            // The wheel zoomed the map: an enclosing scroll area must not scroll too.
            ui.ctx().input_mut(|i| i.smooth_scroll_delta.y = 0.0);
        }
        if response.dragged_by(PointerButton::Secondary)
            || response.dragged_by(PointerButton::Middle)
        {
            self.view.pan(response.drag_delta());
            self.view_is_users = true;
        }
        if response.double_clicked() {
            self.fit_to(rect);
        }

        if response.contains_pointer() && !ui.ctx().egui_wants_keyboard_input() {
            ui.input(|i| {
                if i.key_pressed(Key::R) {
                    self.brush_mode = BrushMode::Rectangle;
                } else if i.key_pressed(Key::L) {
                    self.brush_mode = BrushMode::Lasso;
                }
            });
        }
        if self.brush.is_some() && ui.input(|i| i.key_pressed(Key::Escape)) {
            self.brush = None;
        }

        if response.drag_started_by(PointerButton::Primary)
            && let Some(origin) = press_origin.or(response.interact_pointer_pos())
        {
            let start = self.view.screen_to_data(rect, origin);
            self.brush = Some(match self.brush_mode {
                BrushMode::Rectangle => Brush::Rectangle { start, end: start },
                BrushMode::Lasso => Brush::Lasso {
                    vertices: vec![start],
                },
            });
        }
        if response.dragged_by(PointerButton::Primary)
            && let Some(pointer) = response.interact_pointer_pos()
        {
            let data = self.view.screen_to_data(rect, pointer);
            match &mut self.brush {
                Some(Brush::Rectangle { end, .. }) => *end = data,
                Some(Brush::Lasso { vertices }) => {
                    let last = vertices.last().map(|v| self.view.data_to_screen(rect, *v));
                    if last.is_none_or(|last| last.distance(pointer) >= LASSO_STEP_PTS) {
                        vertices.push(data);
                    }
                }
                None => {}
            }
        }

        let mut brushed = None;
        if response.drag_stopped_by(PointerButton::Primary)
            && let Some(brush) = self.brush.take()
        {
            let positions = &self.points.positions;
            let inside = match brush {
                Brush::Rectangle { start, end } => hit::points_in_rect(positions, start, end),
                Brush::Lasso { vertices } => hit::points_in_lasso(positions, &vertices),
            };
            brushed = Some((inside, op));
        }

        let mut clicked = None;
        if response.clicked()
            && let Some(pointer) = response.interact_pointer_pos()
        {
            match self.point_at(rect, pointer) {
                Some(i) => clicked = Some((i, op)),
                None if op == SelectionOp::Replace => brushed = Some((Vec::new(), op)),
                None => {}
            }
        }
        (clicked, brushed)
    }

    /// The point nearest to a screen position, within the hover radius (at the positions the
    /// points are heading to, so a running animation does not make hover flicker).
    fn point_at(&mut self, rect: Rect, screen: Pos2) -> Option<usize> {
        let positions = &self.points.positions;
        let grid = self
            .points
            .grid
            .get_or_insert_with(|| SpatialGrid::build(positions));
        let max_dist = HOVER_RADIUS_PTS / self.view.points_per_unit;
        grid.nearest(positions, self.view.screen_to_data(rect, screen), max_dist)
    }

    fn paint_gpu(&self, ui: &Ui, painter: &egui::Painter, rect: Rect, t: f32) {
        let pixels_per_point = ui.ctx().pixels_per_point();
        let radius_pts = self.point_size_pts * 0.5;
        // The quad reaches one pixel past the disc, for the anti-aliased edge.
        let quad_half_pts = radius_pts + 1.0 / pixels_per_point;
        let scale = self.view.points_per_unit;
        let uniforms = Uniforms {
            center: self.view.center,
            ndc_per_unit: [2.0 * scale / rect.width(), 2.0 * scale / rect.height()],
            quad_half_ndc: [
                2.0 * quad_half_pts / rect.width(),
                2.0 * quad_half_pts / rect.height(),
            ],
            radius_px: radius_pts * pixels_per_point,
            t,
        };
        let points = GpuPoints {
            from: self.points.from.clone(),
            to: self.points.positions.clone(),
            colours: self.points.colours.clone(),
            positions_rev: self.points.positions_rev,
            colours_rev: self.points.colours_rev,
        };
        let callback = ScatterCallback {
            plot: self.id,
            uniforms,
            points,
        };
        painter.add(egui_wgpu::Callback::new_paint_callback(rect, callback));
    }

    fn paint_cpu(&mut self, ui: &Ui, painter: &egui::Painter, rect: Rect, t: f32) {
        let pixels_per_point = ui.ctx().pixels_per_point();
        let mut size_px = [
            (rect.width() * pixels_per_point).round() as usize,
            (rect.height() * pixels_per_point).round() as usize,
        ];
        let pixels = size_px[0] * size_px[1];
        let downscaled = pixels > MAX_SPLAT_PIXELS;
        if downscaled {
            let shrink = (MAX_SPLAT_PIXELS as f64 / pixels as f64).sqrt();
            size_px = size_px.map(|side| (side as f64 * shrink) as usize);
        }
        if size_px[0] == 0 || size_px[1] == 0 {
            return;
        }
        let px_per_point = size_px[0] as f32 / rect.width();
        let params = SplatParams {
            size_px,
            center: self.view.center,
            px_per_unit: self.view.points_per_unit * px_per_point,
            radius_px: self.point_size_pts * 0.5 * px_per_point,
            t,
        };
        let made_from = Some((params, self.points.positions_rev, self.points.colours_rev));
        if self.cpu_image.made_from != made_from || self.cpu_image.texture.is_none() {
            let points = &self.points;
            let image = ColorImage::new(
                size_px,
                cpu::splat(&params, &points.from, &points.positions, &points.colours),
            );
            // 1:1 with the screen's pixels: no filtering blur.
            let options = if downscaled {
                TextureOptions::LINEAR
            } else {
                TextureOptions::NEAREST
            };
            match &mut self.cpu_image.texture {
                Some(texture) => texture.set(image, options),
                None => {
                    self.cpu_image.texture = Some(ui.ctx().load_texture(
                        format!("scatter-{:?}", self.id),
                        image,
                        options,
                    ))
                }
            }
            self.cpu_image.made_from = made_from;
        }
        if let Some(texture) = &self.cpu_image.texture {
            let uv = Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0));
            painter.image(texture.id(), rect, uv, Color32::WHITE);
        }
    }

    fn paint_brush(&self, ui: &Ui, painter: &egui::Painter, rect: Rect, stroke: Stroke) {
        let fill = ui.visuals().selection.bg_fill.gamma_multiply(0.15);
        match &self.brush {
            Some(Brush::Rectangle { start, end }) => {
                let area = Rect::from_two_pos(
                    self.view.data_to_screen(rect, *start),
                    self.view.data_to_screen(rect, *end),
                );
                painter.rect(area, 0.0, fill, stroke, egui::StrokeKind::Middle);
            }
            Some(Brush::Lasso { vertices }) if vertices.len() >= 2 => {
                let screen: Vec<Pos2> = vertices
                    .iter()
                    .map(|v| self.view.data_to_screen(rect, *v))
                    .collect();
                // Closed: the closing edge is part of the selection polygon.
                painter.add(Shape::closed_line(screen, stroke));
            }
            _ => {}
        }
    }
}

/// `colours` with exactly `count` entries (padded with grey or truncated; copies only when the
/// caller got the length wrong).
fn one_colour_each(colours: Arc<Vec<Color32>>, count: usize) -> Arc<Vec<Color32>> {
    if colours.len() == count {
        return colours;
    }
    let mut fixed: Vec<Color32> = colours.iter().copied().take(count).collect();
    fixed.resize(count, MISSING_COLOUR);
    Arc::new(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_op_follows_modifiers() {
        let mut m = egui::Modifiers::default();
        assert_eq!(SelectionOp::from_modifiers(m), SelectionOp::Replace);
        m.command = true;
        assert_eq!(SelectionOp::from_modifiers(m), SelectionOp::Subtract);
        m.shift = true;
        assert_eq!(SelectionOp::from_modifiers(m), SelectionOp::Add);
    }

    #[test]
    fn colours_are_matched_to_the_points() {
        let two = Arc::new(vec![Color32::RED, Color32::BLUE]);
        assert!(Arc::ptr_eq(&one_colour_each(two.clone(), 2), &two));
        assert_eq!(
            *one_colour_each(two.clone(), 3),
            vec![Color32::RED, Color32::BLUE, MISSING_COLOUR]
        );
        assert_eq!(*one_colour_each(two, 1), vec![Color32::RED]);
    }

    #[test]
    fn animation_needs_matching_lengths() {
        let mut plot = ScatterPlot::new(Id::unique("test"));
        let positions = Arc::new(vec![[0.0, 0.0], [1.0, 1.0]]);
        let colours = Arc::new(vec![Color32::WHITE; 2]);
        plot.set_points(
            positions.clone(),
            colours.clone(),
            Some(Arc::new(vec![[5.0, 5.0]])),
        );
        assert!(plot.animation.is_none() && Arc::ptr_eq(&plot.points.from, &plot.points.positions));
        plot.set_points(positions, colours, Some(Arc::new(vec![[5.0, 5.0]; 2])));
        assert!(plot.animation.is_some() && plot.points.from[0] == [5.0, 5.0]);
        assert_eq!(plot.point_count(), 2);
    }

    /// Drives the widget through a plain egui context, one frame per call.
    struct Harness {
        ctx: egui::Context,
        plot: ScatterPlot,
        frame: usize,
    }

    struct Frame {
        rect: Rect,
        hovered: Option<usize>,
        clicked: Option<(usize, SelectionOp)>,
        brushed: Option<(Vec<usize>, SelectionOp)>,
    }

    impl Harness {
        /// A 10 × 10 grid of points at integer data coordinates.
        fn new() -> Self {
            let positions: Vec<[f32; 2]> = (0..100)
                .map(|i| [(i % 10) as f32, (i / 10) as f32])
                .collect();
            let mut plot = ScatterPlot::new(Id::unique("scatter_test"));
            plot.set_points(
                Arc::new(positions),
                Arc::new(vec![Color32::WHITE; 100]),
                None,
            );
            Self {
                ctx: egui::Context::default(),
                plot,
                frame: 0,
            }
        }

        fn run(&mut self, mut events: Vec<egui::Event>, modifiers: egui::Modifiers) -> Frame {
            events.insert(0, egui::Event::ModifiersChanged(modifiers));
            let input = egui::RawInput {
                screen_rect: Some(Rect::from_min_size(Pos2::ZERO, vec2(400.0, 300.0))),
                time: Some(self.frame as f64 * 0.25),
                events,
                ..Default::default()
            };
            self.frame += 1;
            let mut frame = None;
            let plot = &mut self.plot;
            let _ = self.ctx.run_ui(input, |ui| {
                let r = plot.show(ui, ScatterBackend::Cpu);
                frame = Some(Frame {
                    rect: r.response.rect,
                    hovered: r.hovered,
                    clicked: r.clicked,
                    brushed: r.brushed,
                });
            });
            frame.expect("the plot was shown")
        }

        fn screen(&self, rect: Rect, data: [f32; 2]) -> Pos2 {
            self.plot.data_to_screen(rect, data)
        }
    }

    fn button(pos: Pos2, pressed: bool, modifiers: egui::Modifiers) -> egui::Event {
        egui::Event::PointerButton {
            pos,
            button: PointerButton::Primary,
            pressed,
            modifiers,
        }
    }

    #[test]
    fn hover_click_and_rectangle_brush() {
        let mut h = Harness::new();
        let rect = h.run(Vec::new(), Default::default()).rect;
        // The first frame fitted the view: every point is inside the plot.
        assert!(
            (0..100).all(|i| rect.contains(h.screen(rect, [(i % 10) as f32, (i / 10) as f32])))
        );

        let near_23 = h.screen(rect, [2.0, 3.0]) + vec2(2.0, -1.0);
        assert_eq!(
            h.run(vec![egui::Event::PointerMoved(near_23)], Default::default())
                .hovered,
            Some(32)
        );
        let shift = egui::Modifiers::SHIFT;
        h.run(vec![button(near_23, true, shift)], shift);
        let frame = h.run(vec![button(near_23, false, shift)], shift);
        assert_eq!(frame.clicked, Some((32, SelectionOp::Add)));

        // Drag a rectangle from data (1.5, 1.5) to (4.5, 6.5) with Ctrl: x 2..=4, y 2..=6.
        let (a, b) = (h.screen(rect, [1.5, 1.5]), h.screen(rect, [4.5, 6.5]));
        let ctrl = egui::Modifiers::COMMAND;
        h.run(vec![egui::Event::PointerMoved(a)], ctrl);
        h.run(vec![button(a, true, ctrl)], ctrl);
        for k in 1..=4 {
            let brush = h.run(
                vec![egui::Event::PointerMoved(a + (b - a) * (k as f32 / 4.0))],
                ctrl,
            );
            assert!(brush.brushed.is_none() && brush.hovered.is_none());
        }
        let (inside, op) = h
            .run(vec![button(b, false, ctrl)], ctrl)
            .brushed
            .expect("brush finished");
        let expected: Vec<usize> = (0..100)
            .filter(|i| (2..=4).contains(&(i % 10)) && (2..=6).contains(&(i / 10)))
            .collect();
        assert_eq!((inside, op), (expected, SelectionOp::Subtract));

        // A click on empty space clears (an empty Replace).
        let empty = h.screen(rect, [4.5, 4.5]);
        h.run(
            vec![
                egui::Event::PointerMoved(empty),
                button(empty, true, Default::default()),
            ],
            Default::default(),
        );
        let frame = h.run(
            vec![button(empty, false, Default::default())],
            Default::default(),
        );
        assert_eq!(frame.brushed, Some((Vec::new(), SelectionOp::Replace)));
    }

    #[test]
    fn lasso_keys_and_escape() {
        let mut h = Harness::new();
        let rect = h.run(Vec::new(), Default::default()).rect;
        let centre = h.screen(rect, [4.5, 4.5]);
        h.run(
            vec![
                egui::Event::PointerMoved(centre),
                egui::Event::Key {
                    key: Key::L,
                    physical_key: None,
                    pressed: true,
                    repeat: false,
                    modifiers: Default::default(),
                },
            ],
            Default::default(),
        );
        assert_eq!(h.plot.brush_mode(), BrushMode::Lasso);

        // A triangle lasso around (1, 1), (7, 1), (1, 7): the points with x + y <= 8 (and >= 1).
        let corners = [[0.5, 0.5], [7.8, 0.5], [0.5, 7.8]];
        let start = h.screen(rect, corners[0]);
        h.run(
            vec![
                egui::Event::PointerMoved(start),
                button(start, true, Default::default()),
            ],
            Default::default(),
        );
        for edge in 0..3 {
            let (from, to) = (
                h.screen(rect, corners[edge]),
                h.screen(rect, corners[(edge + 1) % 3]),
            );
            for k in 1..=8 {
                h.run(
                    vec![egui::Event::PointerMoved(
                        from + (to - from) * (k as f32 / 8.0),
                    )],
                    Default::default(),
                );
            }
        }
        let (inside, op) = h
            .run(
                vec![button(start, false, Default::default())],
                Default::default(),
            )
            .brushed
            .expect("lasso finished");
        let expected: Vec<usize> = (0..100)
            .filter(|i| i % 10 >= 1 && i / 10 >= 1 && i % 10 + i / 10 <= 8)
            .collect();
        assert_eq!((inside, op), (expected, SelectionOp::Replace));

        // Esc drops a brush in progress: releasing then selects nothing.
        h.run(
            vec![button(start, true, Default::default())],
            Default::default(),
        );
        h.run(vec![egui::Event::PointerMoved(centre)], Default::default());
        h.run(
            vec![egui::Event::Key {
                key: Key::Escape,
                physical_key: None,
                pressed: true,
                repeat: false,
                modifiers: Default::default(),
            }],
            Default::default(),
        );
        assert!(
            h.run(
                vec![button(centre, false, Default::default())],
                Default::default()
            )
            .brushed
            .is_none()
        );
    }
}
