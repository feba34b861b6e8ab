//! The two HTTP apps. Routers list every route of an app in one screen;
//! handlers are thin and call the domain modules.

pub mod admin;
pub mod error;
pub mod extract;
pub mod metrics_layer;
pub mod public;
pub mod routes;

pub use error::ApiError;

use crate::app::App;
use std::sync::Arc;

pub type AppState = Arc<App>;
