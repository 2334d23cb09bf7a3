//! Architecture tables of the zoo's networks and the backbone conv numbering.
//!
//! Every network here has the same skeleton (`../shared/paper/NOTES.md` §6): a 3×3 stride-2
//! `first_conv`, block 0 (depthwise 3×3 then a pointwise projection, no expansion), inverted
//! bottleneck blocks (pointwise expansion → depthwise k×k → pointwise projection, with a residual
//! add when the stride is 1 and the channels match), a global average pool and a 1×1-conv
//! classifier. Convs pad by `(k − 1) / 2`.
//!
//! The per-block tables of the paper's three networks were read from the int8 ONNX files of
//! `../shared/models` (every conv's kernel, stride, pads, groups and weight shape, and the inputs
//! of every `Add`); they agree with the summaries of NOTES §6. A test compares them with the ONNX
//! files again at test time.

/// One block of a network: an inverted bottleneck, or block 0 without expansion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Output channels of the expanding pointwise conv (`pointwise1`); `None` for a block without
    /// one (block 0: depthwise directly on the block input).
    pub expand: Option<usize>,
    /// Depthwise kernel size (square).
    pub kernel: usize,
    /// Depthwise stride.
    pub stride: usize,
    /// Output channels of the projecting pointwise conv (`pointwise2`).
    pub out: usize,
    /// Whether the block input is added to its output (`blocks.N.add`).
    pub residual: bool,
}

impl Block {
    /// A block without expansion: depthwise `kernel`×`kernel` at `stride`, then a projection to
    /// `out` channels, no residual.
    pub const fn dw(kernel: usize, stride: usize, out: usize) -> Block {
        Block {
            expand: None,
            kernel,
            stride,
            out,
            residual: false,
        }
    }

    /// An inverted bottleneck: expansion to `expand` channels, depthwise `kernel`×`kernel` at
    /// `stride`, projection to `out` channels, with a residual add if `residual`.
    pub const fn ib(
        expand: usize,
        kernel: usize,
        stride: usize,
        out: usize,
        residual: bool,
    ) -> Block {
        Block {
            expand: Some(expand),
            kernel,
            stride,
            out,
            residual,
        }
    }

    /// Number of convs in the block (2 without expansion, 3 with).
    pub fn num_convs(&self) -> usize {
        if self.expand.is_some() {
            3
        } else {
            2
        }
    }
}

/// A whole network of the zoo's skeleton.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// Short name, also the module name (e.g. `mcunet_5fps`).
    pub name: &'static str,
    /// Input height and width (the input is `1×3×size×size`).
    pub input_size: usize,
    /// Output channels of `first_conv` (3×3, stride 2).
    pub first_conv_channels: usize,
    /// Blocks in order; block 0 must be a [`Block::dw`] block.
    pub blocks: &'static [Block],
    /// Output classes of the classifier.
    pub num_classes: usize,
}

/// The blocks of [`MCUNET_5FPS`] (block `n` at position `n`).
#[rustfmt::skip]
pub const MCUNET_5FPS_BLOCKS: &[Block] = &[
    //        expand  k  s  out  residual         input map
    Block::dw(        3, 1,   8),              //  0  64×64
    Block::ib( 32,    3, 2,  16, false),       //  1  64×64
    Block::ib( 48,    3, 1,  16, true),        //  2  32×32
    Block::ib( 48,    7, 2,  24, false),       //  3  32×32
    Block::ib(120,    3, 1,  24, true),        //  4  16×16
    Block::ib(120,    3, 2,  40, false),       //  5  16×16
    Block::ib(160,    7, 1,  40, true),        //  6   8×8
    Block::ib(160,    5, 1,  48, false),       //  7   8×8
    Block::ib(144,    3, 1,  48, true),        //  8   8×8
    Block::ib(192,    3, 1,  48, true),        //  9   8×8
    Block::ib(240,    7, 2,  96, false),       // 10   8×8
    Block::ib(384,    5, 1,  96, true),        // 11   4×4
    Block::ib(384,    5, 1,  96, true),        // 12   4×4
    Block::ib(576,    3, 1, 160, false),       // 13   4×4
];

/// MCUNet-5FPS (NOTES §6: 14 blocks, 42 backbone convs; 0.47 M params, 22.5 M MACs; final map
/// 4×4×160), from `../shared/models/mcunet-5fps.onnx`.
pub const MCUNET_5FPS: NetConfig = NetConfig {
    name: "mcunet_5fps",
    input_size: 128,
    first_conv_channels: 16,
    blocks: MCUNET_5FPS_BLOCKS,
    num_classes: 1000,
};

/// The blocks of [`MBV2_W035`] (block `n` at position `n`).
#[rustfmt::skip]
pub const MBV2_W035_BLOCKS: &[Block] = &[
    //        expand  k  s  out  residual         input map
    Block::dw(        3, 1,   8),              //  0  64×64
    Block::ib( 48,    3, 2,   8, false),       //  1  64×64  (8 × 6)
    Block::ib( 48,    3, 1,   8, true),        //  2  32×32
    Block::ib( 48,    3, 2,  16, false),       //  3  32×32
    Block::ib( 96,    3, 1,  16, true),        //  4  16×16  (16 × 6)
    Block::ib( 96,    3, 1,  16, true),        //  5  16×16
    Block::ib( 96,    3, 2,  24, false),       //  6  16×16
    Block::ib(144,    3, 1,  24, true),        //  7   8×8   (24 × 6)
    Block::ib(144,    3, 1,  24, true),        //  8   8×8
    Block::ib(144,    3, 1,  24, true),        //  9   8×8
    Block::ib(144,    3, 1,  32, false),       // 10   8×8
    Block::ib(192,    3, 1,  32, true),        // 11   8×8   (32 × 6)
    Block::ib(192,    3, 1,  32, true),        // 12   8×8
    Block::ib(192,    3, 2,  56, false),       // 13   8×8
    Block::ib(336,    3, 1,  56, true),        // 14   4×4   (56 × 6)
    Block::ib(336,    3, 1,  56, true),        // 15   4×4
    Block::ib(336,    3, 1, 112, false),       // 16   4×4
];

/// MobileNetV2-w0.35 (NOTES §6: 17 blocks, 51 backbone convs; 0.24 M params, 16.6 M MACs; final
/// map 4×4×112; expansion 6, all depthwise 3×3), from `../shared/models/mbv2-w0.35.onnx`.
pub const MBV2_W035: NetConfig = NetConfig {
    name: "mbv2_w035",
    input_size: 128,
    first_conv_channels: 16,
    blocks: MBV2_W035_BLOCKS,
    num_classes: 1000,
};

/// The blocks of [`PROXYLESS_W03`] (block `n` at position `n`).
#[rustfmt::skip]
pub const PROXYLESS_W03_BLOCKS: &[Block] = &[
    //        expand  k  s  out  residual         input map  expansion
    Block::dw(        3, 1,   8),              //  0  64×64
    Block::ib( 24,    5, 2,  16, false),       //  1  64×64  3
    Block::ib( 48,    3, 1,  16, true),        //  2  32×32  3
    Block::ib( 48,    7, 2,  16, false),       //  3  32×32  3
    Block::ib( 48,    3, 1,  16, true),        //  4  16×16  3
    Block::ib( 48,    5, 1,  16, true),        //  5  16×16  3
    Block::ib( 48,    5, 1,  16, true),        //  6  16×16  3
    Block::ib( 96,    7, 2,  24, false),       //  7  16×16  6
    Block::ib( 72,    5, 1,  24, true),        //  8   8×8   3
    Block::ib( 72,    5, 1,  24, true),        //  9   8×8   3
    Block::ib( 72,    5, 1,  24, true),        // 10   8×8   3
    Block::ib(144,    5, 1,  32, false),       // 11   8×8   6
    Block::ib( 96,    5, 1,  32, true),        // 12   8×8   3
    Block::ib( 96,    5, 1,  32, true),        // 13   8×8   3
    Block::ib( 96,    5, 1,  32, true),        // 14   8×8   3
    Block::ib(192,    7, 2,  64, false),       // 15   8×8   6
    Block::ib(384,    7, 1,  64, true),        // 16   4×4   6
    Block::ib(192,    7, 1,  64, true),        // 17   4×4   3
    Block::ib(192,    7, 1,  64, true),        // 18   4×4   3
    Block::ib(384,    7, 1,  96, false),       // 19   4×4   6
];

/// ProxylessNAS-w0.3 (NOTES §6: 20 blocks, 60 backbone convs; 0.33 M params, 18.6 M MACs; final
/// map 4×4×96; kernels 3/5/7, expansion 3 or 6), from `../shared/models/proxyless-w0.3.onnx`.
pub const PROXYLESS_W03: NetConfig = NetConfig {
    name: "proxyless_w03",
    input_size: 128,
    first_conv_channels: 16,
    blocks: PROXYLESS_W03_BLOCKS,
    num_classes: 1000,
};

/// The blocks of [`TINY`] (block `n` at position `n`).
#[rustfmt::skip]
pub const TINY_BLOCKS: &[Block] = &[
    //        expand  k  s  out  residual         input map
    Block::dw(        3, 1,   4),              //  0  16×16
    Block::ib( 12,    3, 1,   4, true),        //  1  16×16
    Block::ib( 16,    5, 2,   8, false),       //  2  16×16
];

/// A tiny network for tests: input 1×3×32×32, `first_conv` 3→8 (16×16), block 0 (depthwise,
/// projection to 4), a residual block and a stride-2 block, final map 8×8×8, 10 classes.
pub const TINY: NetConfig = NetConfig {
    name: "tiny",
    input_size: 32,
    first_conv_channels: 8,
    blocks: TINY_BLOCKS,
    num_classes: 10,
};

/// The role of a conv inside its block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConvRole {
    /// The stem conv `first_conv`.
    FirstConv,
    /// `blocks.N.pointwise1` (expansion).
    Pointwise1,
    /// `blocks.N.depthwise`.
    Depthwise,
    /// `blocks.N.pointwise2` (projection).
    Pointwise2,
    /// The 1×1-conv `classifier`.
    Classifier,
}

impl ConvRole {
    /// The last component of the layer name (`pointwise1`, ...), or the whole name for
    /// `first_conv` and `classifier`.
    pub fn suffix(self) -> &'static str {
        match self {
            ConvRole::FirstConv => "first_conv",
            ConvRole::Pointwise1 => "pointwise1",
            ConvRole::Depthwise => "depthwise",
            ConvRole::Pointwise2 => "pointwise2",
            ConvRole::Classifier => "classifier",
        }
    }
}

/// One conv of a network, in forward order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvSpec {
    /// Layer name, e.g. `blocks.3.depthwise` (the op's `loc` name; the parameters are
    /// `<name>.weight` and `<name>.bias`).
    pub name: String,
    /// The conv's role.
    pub role: ConvRole,
    /// The block it belongs to (`None` for `first_conv` and `classifier`).
    pub block: Option<usize>,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride (both directions).
    pub stride: usize,
    /// Padding on every side, `(kernel − 1) / 2`.
    pub pad: usize,
    /// Groups (channels for depthwise, else 1).
    pub groups: usize,
    /// Input height (= width).
    pub in_size: usize,
    /// Output height (= width).
    pub out_size: usize,
}

impl ConvSpec {
    /// Multiply-accumulates: `C_out · H_out · W_out · (C_in / groups) · k²`.
    pub fn macs(&self) -> u64 {
        let per_output = (self.in_channels / self.groups) * self.kernel * self.kernel;
        (self.out_channels * self.out_size * self.out_size * per_output) as u64
    }

    /// Weight plus bias elements.
    pub fn params(&self) -> u64 {
        let weight =
            self.out_channels * (self.in_channels / self.groups) * self.kernel * self.kernel;
        (weight + self.out_channels) as u64
    }
}

impl NetConfig {
    /// Every conv in forward order, including `classifier` (last).
    pub fn convs(&self) -> Vec<ConvSpec> {
        let mut walk = ConvWalk {
            size: self.input_size,
            channels: 3,
            convs: Vec::new(),
        };
        walk.conv(ConvRole::FirstConv, None, self.first_conv_channels, 3, 2);
        for (n, block) in self.blocks.iter().enumerate() {
            if let Some(expand) = block.expand {
                walk.conv(ConvRole::Pointwise1, Some(n), expand, 1, 1);
            }
            let channels = walk.channels;
            walk.conv(
                ConvRole::Depthwise,
                Some(n),
                channels,
                block.kernel,
                block.stride,
            );
            walk.conv(ConvRole::Pointwise2, Some(n), block.out, 1, 1);
        }
        // The classifier sees the pooled 1×1 map.
        walk.size = 1;
        walk.conv(ConvRole::Classifier, None, self.num_classes, 1, 1);
        walk.convs
    }

    /// The backbone convs (all but `classifier`) in forward order: position `i` is backbone conv
    /// index `i` of NOTES §3.
    pub fn backbone_convs(&self) -> Vec<ConvSpec> {
        let mut convs = self.convs();
        convs.pop();
        convs
    }

    /// Number of backbone convs (`classifier` excluded).
    pub fn num_backbone_convs(&self) -> usize {
        1 + self.blocks.iter().map(Block::num_convs).sum::<usize>()
    }

    /// The layer name of backbone conv `index` (NOTES §3: `first_conv` = 0, block 0 = {1:
    /// depthwise, 2: pointwise2}, block b ≥ 1 = {3b: pointwise1, 3b+1: depthwise, 3b+2:
    /// pointwise2}; the classifier has no index). `None` past the last backbone conv.
    ///
    /// Counting convs in forward order gives the same numbering for every network whose block 0
    /// is the only block without expansion, as in all the zoo's networks.
    pub fn backbone_conv_name(&self, index: usize) -> Option<String> {
        let mut i = 0;
        if index == 0 {
            return Some("first_conv".into());
        }
        i += 1;
        for (n, block) in self.blocks.iter().enumerate() {
            let roles: &[ConvRole] = if block.expand.is_some() {
                &[
                    ConvRole::Pointwise1,
                    ConvRole::Depthwise,
                    ConvRole::Pointwise2,
                ]
            } else {
                &[ConvRole::Depthwise, ConvRole::Pointwise2]
            };
            if index < i + roles.len() {
                return Some(format!("blocks.{n}.{}", roles[index - i].suffix()));
            }
            i += roles.len();
        }
        None
    }

    /// The backbone conv index of layer `name` (the inverse of
    /// [`NetConfig::backbone_conv_name`]); `None` for `classifier` and unknown names.
    pub fn backbone_conv_index(&self, name: &str) -> Option<usize> {
        if name == "first_conv" {
            return Some(0);
        }
        let rest = name.strip_prefix("blocks.")?;
        let (n, suffix) = rest.split_once('.')?;
        let n: usize = n.parse().ok()?;
        // Reject non-canonical numbers such as `blocks.01`.
        if n.to_string().len() != rest.len() - suffix.len() - 1 {
            return None;
        }
        let block = self.blocks.get(n)?;
        let mut index = 1 + self.blocks[..n].iter().map(Block::num_convs).sum::<usize>();
        match suffix {
            "pointwise1" if block.expand.is_some() => Some(index),
            "depthwise" | "pointwise2" => {
                if block.expand.is_some() {
                    index += 1;
                }
                if suffix == "pointwise2" {
                    index += 1;
                }
                Some(index)
            }
            _ => None,
        }
    }

    /// Height and width of the last backbone feature map (the input of `pool`).
    pub fn final_map_size(&self) -> usize {
        self.backbone_convs()
            .last()
            .map_or(self.input_size, |c| c.out_size)
    }

    /// Channels of the last backbone feature map.
    pub fn final_channels(&self) -> usize {
        self.blocks
            .last()
            .map_or(self.first_conv_channels, |b| b.out)
    }

    /// Checks the table's own consistency: block 0 exists and is the only block without
    /// expansion, strides are 1 or 2, kernels are odd, and a block is residual exactly when its
    /// stride is 1 and its input and output channels are equal. Returns what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let Some(first) = self.blocks.first() else {
            return Err(format!("{}: no blocks", self.name));
        };
        if first.expand.is_some() {
            return Err(format!("{}: block 0 must have no expansion", self.name));
        }
        let mut channels = self.first_conv_channels;
        for (n, b) in self.blocks.iter().enumerate() {
            if n > 0 && b.expand.is_none() {
                return Err(format!("{}: block {n} has no expansion", self.name));
            }
            if !matches!(b.stride, 1 | 2) || b.kernel % 2 == 0 {
                return Err(format!(
                    "{}: block {n}: kernel {} stride {} (odd kernels, strides 1 or 2)",
                    self.name, b.kernel, b.stride
                ));
            }
            let can_add = b.stride == 1 && channels == b.out;
            if b.residual != can_add {
                return Err(format!(
                    "{}: block {n}: residual = {} but stride {} and channels {channels} → {}",
                    self.name, b.residual, b.stride, b.out
                ));
            }
            channels = b.out;
        }
        Ok(())
    }
}

/// Walks a network's convs in forward order, tracking the feature map.
struct ConvWalk {
    size: usize,
    channels: usize,
    convs: Vec<ConvSpec>,
}

impl ConvWalk {
    fn conv(
        &mut self,
        role: ConvRole,
        block: Option<usize>,
        out: usize,
        kernel: usize,
        stride: usize,
    ) {
        let pad = (kernel - 1) / 2;
        let out_size = (self.size + 2 * pad - kernel) / stride + 1;
        let name = match block {
            Some(n) => format!("blocks.{n}.{}", role.suffix()),
            None => role.suffix().to_string(),
        };
        self.convs.push(ConvSpec {
            name,
            role,
            block,
            in_channels: self.channels,
            out_channels: out,
            kernel,
            stride,
            pad,
            groups: if role == ConvRole::Depthwise {
                self.channels
            } else {
                1
            },
            in_size: self.size,
            out_size,
        });
        self.size = out_size;
        self.channels = out;
    }
}
