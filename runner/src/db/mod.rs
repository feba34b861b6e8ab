//! SQL, one module per table family; handlers never build SQL.
pub mod candidates;
pub mod codebases;
pub mod enums;
pub mod interval;
pub mod queue;
pub mod runs;
