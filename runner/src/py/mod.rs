//! What the runner needs to behave as Python does, in one place: `json.dumps`
//! bytes, `repr()` of strings and floats, `int()`, `shlex`.

pub mod int;
pub mod json;
pub mod repr;
pub mod shlex;
