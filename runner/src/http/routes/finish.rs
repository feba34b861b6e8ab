//! Handlers: see runner-http-api.md.
