//! One module per SQL dialect; each `include!`s the shared statements in `common.rs`.

pub(crate) mod sqlite;

#[cfg(feature = "mysql")]
pub(crate) mod mysql;

#[cfg(feature = "postgres")]
pub(crate) mod postgres;
