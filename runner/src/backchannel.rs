//! See runner-internals.md.
