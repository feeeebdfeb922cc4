//! `fixmatch` (not implemented yet).

super::placeholder::not_yet!(FixMatch, "fixmatch");
