//! Log and artifact storage (runner-internals.md §9, §10).
