//! What the integration tests share: the sample results the library's own
//! unit tests use too (sample.rs is compiled in both places).

pub use isola_bench::results;

pub mod browser;
mod sample;

pub use sample::sample;
