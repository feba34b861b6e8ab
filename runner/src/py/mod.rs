//! What the runner needs to behave as Python does, in one place: `json.dumps`
//! bytes, `repr()` of strings and floats, `shlex`.

pub mod json;
pub mod repr;
pub mod shlex;
