//! Catalogue dump of a PostgreSQL database, and a diff between two dumps.
//!
//! [`dump_catalog`] is a port of `shared/schema/dump_catalog.py`: it runs the
//! same catalogue queries (restricted to schema `public`) and builds a
//! `serde_json::Value` with the same structure as
//! `golden/schema/python-schema.json`:
//!
//! ```text
//! { source, server_version, extensions: [{name, version}],
//!   enums: {name: [label...]}, domains: {name: {base_type, not_null, default, checks}},
//!   composite_types: {name: ["attr type"...]},
//!   tables: {name: {columns: [...], constraints: [...], indexes: [...], triggers: [...]}},
//!   views: {name: {materialized, columns: [{name, type}], definition}},
//!   sequences: [name...], functions: [{name, arguments, returns, language}] }
//! ```
//!
//! Differences from the Python script: `source` is `database <name>` (there is
//! no DSN here), and sqlx's own bookkeeping table `_sqlx_migrations` is left
//! out so that a database built by `sqlx::migrate!` compares equal to one built
//! by psql.  Every catalogue value is cast to `text` (or `int`/`bool`) in SQL,
//! because sqlx will not decode `name` arrays or the `information_schema`
//! domains (`sql_identifier`, `yes_or_no`, ...) into `String`.
//!
//! [`diff_catalogs`] compares two such values and lists the differences in
//! readable form ("missing table x", "column t.c: type a != b", ...).  It
//! ignores `source`, and compares `server_version` by major version only.

mod diff;
mod dump;

pub use diff::diff_catalogs;
pub use dump::dump_catalog;

#[cfg(test)]
mod tests;
