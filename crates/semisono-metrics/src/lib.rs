//! Segmentation and classification metrics (filled in by the metrics work).
