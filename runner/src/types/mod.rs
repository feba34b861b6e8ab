//! Wire types (data-types.md), one file per family.
