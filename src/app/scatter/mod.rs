//! Placeholder scatter (replaced by the WGSL / CPU-splat widget): egui circles.

use std::sync::Arc;

use egui::Color32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScatterBackend {
    Gpu,
    Cpu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrushMode {
    Rectangle,
    Lasso,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectionOp {
    Replace,
    Add,
    Subtract,
}

pub struct ScatterResponse {
    pub response: egui::Response,
    pub hovered: Option<usize>,
    pub clicked: Option<(usize, SelectionOp)>,
    pub brushed: Option<(Vec<usize>, SelectionOp)>,
}

pub struct ScatterPlot {
    positions: Arc<Vec<[f32; 2]>>,
    colours: Arc<Vec<Color32>>,
    mode: BrushMode,
    drag_start: Option<egui::Pos2>,
}

pub fn register_gpu(_render_state: &eframe::egui_wgpu::RenderState) {}

impl ScatterPlot {
    pub fn new(_id: egui::Id) -> Self {
        Self {
            positions: Arc::new(Vec::new()),
            colours: Arc::new(Vec::new()),
            mode: BrushMode::Rectangle,
            drag_start: None,
        }
    }

    pub fn set_points(
        &mut self,
        positions: Arc<Vec<[f32; 2]>>,
        colours: Arc<Vec<Color32>>,
        _animate_from: Option<Arc<Vec<[f32; 2]>>>,
    ) {
        self.positions = positions;
        self.colours = colours;
    }

    pub fn set_colours(&mut self, colours: Arc<Vec<Color32>>) {
        self.colours = colours;
    }

    pub fn point_count(&self) -> usize {
        self.positions.len()
    }

    pub fn brush_mode(&self) -> BrushMode {
        self.mode
    }

    pub fn set_brush_mode(&mut self, mode: BrushMode) {
        self.mode = mode;
    }

    pub fn reset_view(&mut self) {}

    pub fn toolbar(&mut self, ui: &mut egui::Ui) {
        ui.selectable_value(&mut self.mode, BrushMode::Rectangle, "Rectangle [R]");
        ui.selectable_value(&mut self.mode, BrushMode::Lasso, "Lasso [L]");
    }

    fn bounds(&self) -> ([f32; 2], [f32; 2]) {
        let mut lo = [f32::INFINITY; 2];
        let mut hi = [f32::NEG_INFINITY; 2];
        for p in self.positions.iter() {
            for k in 0..2 {
                lo[k] = lo[k].min(p[k]);
                hi[k] = hi[k].max(p[k]);
            }
        }
        (lo, hi)
    }

    pub fn show(&mut self, ui: &mut egui::Ui, _backend: ScatterBackend) -> ScatterResponse {
        let (rect, response) =
            ui.allocate_exact_size(ui.available_size(), egui::Sense::click_and_drag());
        let (lo, hi) = self.bounds();
        let to_screen = |p: [f32; 2]| {
            let t = |k: usize| (p[k] - lo[k]) / (hi[k] - lo[k]).max(1e-6);
            egui::pos2(
                rect.left() + 10.0 + t(0) * (rect.width() - 20.0),
                rect.bottom() - 10.0 - t(1) * (rect.height() - 20.0),
            )
        };
        let painter = ui.painter_at(rect);
        for (p, c) in self.positions.iter().zip(self.colours.iter()) {
            painter.circle_filled(to_screen(*p), 2.0, *c);
        }
        let op = ui.input(|i| match (i.modifiers.shift, i.modifiers.command) {
            (true, _) => SelectionOp::Add,
            (_, true) => SelectionOp::Subtract,
            _ => SelectionOp::Replace,
        });
        let mut brushed = None;
        if response.drag_started() {
            self.drag_start = response.interact_pointer_pos();
        }
        if let (Some(start), Some(now)) = (self.drag_start, response.interact_pointer_pos()) {
            let r = egui::Rect::from_two_pos(start, now);
            painter.rect_stroke(r, 0.0, (1.0, Color32::WHITE), egui::StrokeKind::Inside);
            if response.drag_stopped() {
                let rows = self
                    .positions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| r.contains(to_screen(**p)))
                    .map(|(i, _)| i)
                    .collect();
                brushed = Some((rows, op));
                self.drag_start = None;
            }
        }
        let nearest = |pos: egui::Pos2| {
            self.positions
                .iter()
                .enumerate()
                .map(|(i, p)| (i, to_screen(*p).distance(pos)))
                .filter(|(_, d)| *d < 6.0)
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(i, _)| i)
        };
        let hovered = response.hover_pos().and_then(nearest);
        let clicked = match response.clicked() {
            true => response.interact_pointer_pos().and_then(nearest).map(|i| (i, op)),
            false => None,
        };
        ScatterResponse {
            response,
            hovered,
            clicked,
            brushed,
        }
    }
}
