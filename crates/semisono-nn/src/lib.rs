//! Networks and losses on Burn 0.22 (backbones, U-Net decoder, heads, inter-task attention, saliency, losses).
//!
//! Empty shell: filled by issue 3 ("Hermes end to end"). Burn is deliberately not a dependency yet so the
//! foundation (data, metrics, CLI) builds and tests in seconds.
