//! Procedural B-mode phantom generator (filled in by the phantom work).
