//! `cps` (not implemented yet).

super::placeholder::not_yet!(Cps, "cps");
