//! Every loss Hermes (and the other methods) use, as tensor code with autodiff.
//!
//! Each formula follows the Hermes code (spec §5) and is checked against the PyTorch oracle
//! `losses.json` in `tests/oracle_losses.rs`. Where PyTorch would return NaN on degenerate input
//! (every pixel ignored, an anchor without positives), these losses return 0 with a zero gradient;
//! each module documents its case.

pub mod consistency;
pub mod cross_entropy;
pub mod dice;
pub mod memory_bank;
pub mod pixel_contrast;
pub mod supcon;

pub use consistency::{itc_loss, softmax_consistency_loss, CosineOutput, SoftmaxConsistencyOutput};
pub use cross_entropy::{
    class_cross_entropy, ignore_mask_from_index, pixel_cross_entropy, CrossEntropy,
};
pub use dice::{ce_dice_loss, CeDiceOutput, DiceLoss, DiceLossConfig, DiceOutput};
pub use memory_bank::{BankShapeError, MemoryBank};
pub use pixel_contrast::{
    anchor_views, hard_easy_counts, nearest_downsample_labels, AnchorPlan, PixelContrastConfig,
    PixelContrastLoss,
};
pub use supcon::{SupConConfig, SupConLoss};
