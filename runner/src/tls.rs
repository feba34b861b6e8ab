//! One process-wide rustls crypto provider (ring). reqwest is built with
//! `rustls-no-provider` so that aws-lc is never compiled; every client build
//! then needs a default provider, which this installs.

/// Installs ring as the process default; later calls (and a provider some
/// other code installed first) are fine.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means a default is already installed: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A reqwest client builder, with the provider installed first.
pub fn client_builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

/// `reqwest::Client::new()`, with the provider installed first.
pub fn http_client() -> reqwest::Client {
    client_builder().build().expect("building the HTTP client")
}
