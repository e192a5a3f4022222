// Latent-map scatter: one instanced quad per point, shaded as an anti-aliased disc.
// Positions animate on the GPU between two buffers (`from`, `to`) by `t`, so an animation
// frame uploads nothing but the uniform below.

struct Uniforms {
    // Data coordinates at the centre of the viewport.
    center: vec2<f32>,
    // Data units to normalised device coordinates, per axis (y up in both).
    ndc_per_unit: vec2<f32>,
    // Half size of a point's quad in NDC (disc radius plus one pixel for the soft edge).
    quad_half_ndc: vec2<f32>,
    // Disc radius in physical pixels.
    radius_px: f32,
    // Animation position between `from` (0) and `to` (1).
    t: f32,
};

@group(0) @binding(0) var<uniform> u: Uniforms;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    // Offset from the point's centre, in physical pixels.
    @location(0) offset_px: vec2<f32>,
    // Premultiplied, gamma-space colour (egui's `Color32`).
    @location(1) colour: vec4<f32>,
};

@vertex
fn vs_main(
    @builtin(vertex_index) vertex: u32,
    @location(0) from_pos: vec2<f32>,
    @location(1) to_pos: vec2<f32>,
    @location(2) colour: vec4<f32>,
) -> VertexOut {
    // Triangle strip corners: (-1,-1), (1,-1), (-1,1), (1,1).
    let corner = vec2<f32>(f32(vertex & 1u), f32(vertex >> 1u)) * 2.0 - 1.0;
    let data = mix(from_pos, to_pos, u.t);
    let centre_ndc = (data - u.center) * u.ndc_per_unit;
    var out: VertexOut;
    out.position = vec4<f32>(centre_ndc + corner * u.quad_half_ndc, 0.0, 1.0);
    out.offset_px = corner * (u.radius_px + 1.0);
    out.colour = colour;
    return out;
}

fn coverage(offset_px: vec2<f32>) -> f32 {
    // One pixel wide linear edge, the same profile as the CPU splat.
    return clamp(u.radius_px + 0.5 - length(offset_px), 0.0, 1.0);
}

// egui's preferred framebuffers (Rgba8Unorm / Bgra8Unorm) hold gamma-space values.
@fragment
fn fs_main_gamma(in: VertexOut) -> @location(0) vec4<f32> {
    let cover = coverage(in.offset_px);
    if cover <= 0.0 {
        discard;
    }
    return in.colour * cover;
}

fn linear_from_gamma_rgb(srgb: vec3<f32>) -> vec3<f32> {
    let cutoff = srgb < vec3<f32>(0.04045);
    let lower = srgb / vec3<f32>(12.92);
    let higher = pow((srgb + vec3<f32>(0.055)) / vec3<f32>(1.055), vec3<f32>(2.4));
    return select(higher, lower, cutoff);
}

// An sRGB framebuffer converts on write, so hand it linear values (as egui's own shader does).
@fragment
fn fs_main_linear(in: VertexOut) -> @location(0) vec4<f32> {
    let cover = coverage(in.offset_px);
    if cover <= 0.0 {
        discard;
    }
    let colour = in.colour * cover;
    return vec4<f32>(linear_from_gamma_rgb(colour.rgb), colour.a);
}
