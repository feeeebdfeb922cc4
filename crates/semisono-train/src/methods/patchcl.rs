//! `patchcl` (not implemented yet).

super::placeholder::not_yet!(PatchCl, "patchcl");
