//! `mlrpl` (not implemented yet).

super::placeholder::not_yet!(Mlrpl, "mlrpl");
