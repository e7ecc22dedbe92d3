//! # coditect-loadtest
//!
//! KPI scenarios driven over real HTTP/WebSocket against a control plane, HDR-histogram
//! percentile reports, and the CI gate that fails a build when a threshold is missed.
//!
//! Depends on the control plane and below; nothing but the CLI imports it.
