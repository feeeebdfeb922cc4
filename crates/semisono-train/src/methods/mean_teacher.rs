//! `mean-teacher` (not implemented yet).

super::placeholder::not_yet!(MeanTeacher, "mean-teacher");
