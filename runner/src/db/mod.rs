//! SQL, one module per table family; handlers never build SQL.
