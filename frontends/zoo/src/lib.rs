//! The model zoo: the three networks of "On-Device Training Under 256KB Memory" (NeurIPS 2022)
//! built directly as mite IR, plus small models for tests.
//!
//! - [`mcunet_5fps`], [`mbv2_w035`], [`proxyless_w03`]: the paper's networks
//!   (`../shared/paper/NOTES.md` §6) in the int8 form that importing `../shared/models/*.onnx`
//!   produces, with placeholder (seeded) weights: the zoo gives architectures, real weights come
//!   from ONNX import. [`ZooModel::build`] gives the f32 variant or another seed.
//! - [`config`]: the per-block architecture tables ([`config::MCUNET_5FPS`], ...) and the
//!   backbone conv numbering of NOTES §3 ([`config::NetConfig::backbone_conv_name`] and
//!   [`config::NetConfig::backbone_conv_index`]).
//! - [`tiny`]: a tiny int8 CNN with a depthwise block and a residual, its f32 twin, and a tiny
//!   int8 MLP.
//!
//! See [`net`] for the exact op sequence, names, quantization parameters and weight
//! initialisation.
//!
//! ```
//! let m = mite_zoo::mcunet_5fps();
//! mite_ir::verify_module(&m).unwrap();
//! let forward = m.function("forward").unwrap();
//! assert_eq!(forward.ty(forward.outputs()[0]).to_string(), "tensor<1x1000xf32>");
//! assert_eq!(
//!     mite_zoo::ZooModel::Mcunet5fps.config().backbone_conv_name(24).as_deref(),
//!     Some("blocks.8.pointwise1")
//! );
//! ```

#![forbid(unsafe_code)]

pub mod config;
pub mod net;
pub mod rng;
pub mod tiny;

#[cfg(test)]
mod tests;

pub use config::{Block, ConvRole, ConvSpec, NetConfig};
pub use net::{build, ActQuant, BuildOptions, Precision, DEFAULT_SEED};
pub use tiny::{tiny_float_cnn, tiny_int8_cnn, tiny_int8_mlp};

use mite_ir::Module;

/// The paper's three networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ZooModel {
    /// MCUNet-5FPS (14 blocks).
    Mcunet5fps,
    /// MobileNetV2-w0.35 (17 blocks).
    Mbv2W035,
    /// ProxylessNAS-w0.3 (20 blocks).
    ProxylessW03,
}

impl ZooModel {
    /// All three, in the order of NOTES §6.
    pub const ALL: [ZooModel; 3] = [
        ZooModel::Mcunet5fps,
        ZooModel::Mbv2W035,
        ZooModel::ProxylessW03,
    ];

    /// The architecture table.
    pub fn config(self) -> &'static NetConfig {
        match self {
            ZooModel::Mcunet5fps => &config::MCUNET_5FPS,
            ZooModel::Mbv2W035 => &config::MBV2_W035,
            ZooModel::ProxylessW03 => &config::PROXYLESS_W03,
        }
    }

    /// The short name (also the int8 module's name), e.g. `mcunet_5fps`.
    pub fn name(self) -> &'static str {
        self.config().name
    }

    /// The file name of the real int8 model in `../shared/models`, e.g. `mcunet-5fps.onnx`.
    pub fn onnx_file_name(self) -> &'static str {
        match self {
            ZooModel::Mcunet5fps => "mcunet-5fps.onnx",
            ZooModel::Mbv2W035 => "mbv2-w0.35.onnx",
            ZooModel::ProxylessW03 => "proxyless-w0.3.onnx",
        }
    }

    /// The model built with `options`.
    pub fn build(self, options: &BuildOptions) -> Module {
        build(self.config(), options).expect("the zoo's configurations build")
    }
}

/// MCUNet-5FPS, int8, default seed ([`config::MCUNET_5FPS`]).
pub fn mcunet_5fps() -> Module {
    ZooModel::Mcunet5fps.build(&BuildOptions::default())
}

/// MobileNetV2-w0.35, int8, default seed ([`config::MBV2_W035`]).
pub fn mbv2_w035() -> Module {
    ZooModel::Mbv2W035.build(&BuildOptions::default())
}

/// ProxylessNAS-w0.3, int8, default seed ([`config::PROXYLESS_W03`]).
pub fn proxyless_w03() -> Module {
    ZooModel::ProxylessW03.build(&BuildOptions::default())
}
