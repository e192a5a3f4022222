//! Hardware rendering of the scatter: a WGSL instanced-quad pipeline drawn through an
//! `egui_wgpu` paint callback. Point buffers are uploaded only when their revision changes;
//! a frame otherwise writes one 32-byte uniform and issues one draw.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, ScreenDescriptor, wgpu};
use egui::Color32;

const SHADER_SOURCE: &str = include_str!("../../../shaders/scatter.wgsl");
/// Smallest point buffer, so a growing data set does not reallocate at every step.
const MIN_CAPACITY_POINTS: usize = 1024;
const POSITION_BYTES: u64 = size_of::<[f32; 2]>() as u64;
const COLOUR_BYTES: u64 = size_of::<Color32>() as u64;

/// The shader's `Uniforms`, laid out identically.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct Uniforms {
    pub center: [f32; 2],
    pub ndc_per_unit: [f32; 2],
    pub quad_half_ndc: [f32; 2],
    pub radius_px: f32,
    pub t: f32,
}

/// The point data a frame draws, shared (not copied) with the widget.
#[derive(Clone)]
pub struct GpuPoints {
    pub from: Arc<Vec<[f32; 2]>>,
    pub to: Arc<Vec<[f32; 2]>>,
    pub colours: Arc<Vec<Color32>>,
    /// Changes whenever `from`/`to` change (globally unique, never 0).
    pub positions_rev: u64,
    /// Changes whenever `colours` change (globally unique, never 0).
    pub colours_rev: u64,
}

/// One frame's draw of one plot.
pub struct ScatterCallback {
    pub plot: egui::Id,
    pub uniforms: Uniforms,
    pub points: GpuPoints,
}

/// Creates the pipeline in the renderer's callback resources; call once when the app starts
/// with the wgpu renderer. Without it the GPU backend draws nothing.
pub fn register_gpu(render_state: &egui_wgpu::RenderState) {
    register_gpu_with(
        &render_state.device,
        render_state.target_format,
        &mut render_state.renderer.write(),
    );
}

/// [`register_gpu`] for a renderer set up by hand (headless benchmarks and tests).
pub fn register_gpu_with(
    device: &wgpu::Device,
    target_format: wgpu::TextureFormat,
    renderer: &mut egui_wgpu::Renderer,
) {
    renderer
        .callback_resources
        .insert(ScatterPipeline::new(device, target_format));
}

/// GPU state shared by all scatter plots, plus each plot's buffers.
struct ScatterPipeline {
    pipeline: wgpu::RenderPipeline,
    bind_group_layout: wgpu::BindGroupLayout,
    plots: HashMap<egui::Id, PlotBuffers>,
}

struct PlotBuffers {
    uniform: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    from: wgpu::Buffer,
    to: wgpu::Buffer,
    colours: wgpu::Buffer,
    capacity_points: usize,
    /// Revisions now in the buffers; 0 = nothing uploaded yet.
    positions_rev: u64,
    colours_rev: u64,
    count: u32,
}

impl ScatterPipeline {
    fn new(device: &wgpu::Device, target_format: wgpu::TextureFormat) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("scatter"),
            source: wgpu::ShaderSource::Wgsl(SHADER_SOURCE.into()),
        });
        let bind_group_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("scatter_uniforms"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::VERTEX | wgpu::ShaderStages::FRAGMENT,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: NonZeroU64::new(size_of::<Uniforms>() as u64),
                },
                count: None,
            }],
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("scatter"),
            bind_group_layouts: &[Some(&bind_group_layout)],
            immediate_size: 0,
        });
        let instance_buffer = |stride: u64, attributes| wgpu::VertexBufferLayout {
            array_stride: stride,
            step_mode: wgpu::VertexStepMode::Instance,
            attributes,
        };
        let from_attr = [wgpu::VertexAttribute {
            format: wgpu::VertexFormat::Float32x2,
            offset: 0,
            shader_location: 0,
        }];
        let to_attr = [wgpu::VertexAttribute {
            format: wgpu::VertexFormat::Float32x2,
            offset: 0,
            shader_location: 1,
        }];
        let colour_attr = [wgpu::VertexAttribute {
            format: wgpu::VertexFormat::Unorm8x4,
            offset: 0,
            shader_location: 2,
        }];
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("scatter"),
            layout: Some(&layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                buffers: &[
                    Some(instance_buffer(POSITION_BYTES, &from_attr)),
                    Some(instance_buffer(POSITION_BYTES, &to_attr)),
                    Some(instance_buffer(COLOUR_BYTES, &colour_attr)),
                ],
                compilation_options: wgpu::PipelineCompilationOptions::default(),
            },
            primitive: wgpu::PrimitiveState {
                topology: wgpu::PrimitiveTopology::TriangleStrip,
                ..Default::default()
            },
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some(if target_format.is_srgb() {
                    "fs_main_linear"
                } else {
                    "fs_main_gamma"
                }),
                targets: &[Some(wgpu::ColorTargetState {
                    format: target_format,
                    // Premultiplied alpha, as egui blends.
                    blend: Some(wgpu::BlendState::PREMULTIPLIED_ALPHA_BLENDING),
                    write_mask: wgpu::ColorWrites::ALL,
                })],
                compilation_options: wgpu::PipelineCompilationOptions::default(),
            }),
            multiview_mask: None,
            cache: None,
        });
        Self {
            pipeline,
            bind_group_layout,
            plots: HashMap::new(),
        }
    }

    fn plot_buffers(
        &mut self,
        device: &wgpu::Device,
        plot: egui::Id,
        points: usize,
    ) -> &mut PlotBuffers {
        let layout = &self.bind_group_layout;
        let buffers = self
            .plots
            .entry(plot)
            .or_insert_with(|| PlotBuffers::new(device, layout, points));
        if buffers.capacity_points < points {
            *buffers = PlotBuffers::new(device, layout, points);
        }
        buffers
    }
}

impl PlotBuffers {
    fn new(device: &wgpu::Device, layout: &wgpu::BindGroupLayout, points: usize) -> Self {
        let capacity_points = points.next_power_of_two().max(MIN_CAPACITY_POINTS);
        let buffer = |label, size, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: usage | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let uniform = buffer(
            "scatter_uniforms",
            size_of::<Uniforms>() as u64,
            wgpu::BufferUsages::UNIFORM,
        );
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("scatter_uniforms"),
            layout,
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: uniform.as_entire_binding(),
            }],
        });
        let capacity = capacity_points as u64;
        Self {
            bind_group,
            uniform,
            from: buffer(
                "scatter_from",
                capacity * POSITION_BYTES,
                wgpu::BufferUsages::VERTEX,
            ),
            to: buffer(
                "scatter_to",
                capacity * POSITION_BYTES,
                wgpu::BufferUsages::VERTEX,
            ),
            colours: buffer(
                "scatter_colours",
                capacity * COLOUR_BYTES,
                wgpu::BufferUsages::VERTEX,
            ),
            capacity_points,
            positions_rev: 0,
            colours_rev: 0,
            count: 0,
        }
    }
}

impl CallbackTrait for ScatterCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen_descriptor: &ScreenDescriptor,
        _egui_encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(pipeline) = resources.get_mut::<ScatterPipeline>() else {
            return Vec::new();
        };
        let points = &self.points;
        // The widget keeps the three arrays the same length; min() keeps a bad caller harmless.
        let count = points
            .to
            .len()
            .min(points.from.len())
            .min(points.colours.len());
        let buffers = pipeline.plot_buffers(device, self.plot, count);
        if buffers.positions_rev != points.positions_rev {
            queue.write_buffer(
                &buffers.from,
                0,
                bytemuck::cast_slice(&points.from[..count]),
            );
            queue.write_buffer(&buffers.to, 0, bytemuck::cast_slice(&points.to[..count]));
            buffers.positions_rev = points.positions_rev;
        }
        if buffers.colours_rev != points.colours_rev {
            queue.write_buffer(
                &buffers.colours,
                0,
                bytemuck::cast_slice(&points.colours[..count]),
            );
            buffers.colours_rev = points.colours_rev;
        }
        queue.write_buffer(&buffers.uniform, 0, bytemuck::bytes_of(&self.uniforms));
        buffers.count = count as u32;
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        let Some(pipeline) = resources.get::<ScatterPipeline>() else {
            return;
        };
        let Some(buffers) = pipeline.plots.get(&self.plot).filter(|b| b.count > 0) else {
            return;
        };
        let positions = u64::from(buffers.count) * POSITION_BYTES;
        render_pass.set_pipeline(&pipeline.pipeline);
        render_pass.set_bind_group(0, &buffers.bind_group, &[]);
        render_pass.set_vertex_buffer(0, buffers.from.slice(..positions));
        render_pass.set_vertex_buffer(1, buffers.to.slice(..positions));
        render_pass.set_vertex_buffer(
            2,
            buffers
                .colours
                .slice(..u64::from(buffers.count) * COLOUR_BYTES),
        );
        render_pass.draw(0..4, 0..buffers.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eframe::wgpu::naga;

    /// The shader is checked here with naga (what wgpu compiles it with), so a broken shader
    /// fails in CI even where no GPU draws it.
    #[test]
    fn shader_validates_and_matches_the_uniform_layout() {
        let module = naga::front::wgsl::parse_str(SHADER_SOURCE).expect("scatter.wgsl parses");
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .expect("scatter.wgsl validates");
        let uniforms = module
            .types
            .iter()
            .find(|(_, ty)| ty.name.as_deref() == Some("Uniforms"))
            .expect("struct Uniforms");
        let naga::TypeInner::Struct { span, .. } = uniforms.1.inner else {
            panic!("Uniforms is not a struct");
        };
        assert_eq!(span as usize, size_of::<Uniforms>());
        for entry in ["vs_main", "fs_main_gamma", "fs_main_linear"] {
            assert!(
                module.entry_points.iter().any(|e| e.name == entry),
                "{entry}"
            );
        }
    }
}
