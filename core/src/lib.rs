//! isola-core: what every backend and the frontend share: the image store
//! (layers stored and unpacked once, shared by every image), the run spec,
//! the backend and sandbox traits, volumes, instances on disk, and the
//! small pieces around them (explain, terminal, user lookup).

pub mod backend;
pub mod build;
pub mod chain;
pub mod explain;
pub mod fsutil;
pub mod id;
pub mod image;
pub mod instance;
pub mod logs;
pub mod naming;
pub mod network;
pub mod oci;
pub mod proc_io;
pub mod registry;
pub mod root;
pub mod scratch;
pub mod spec;
pub mod terminal;
pub mod user;
pub mod volume;

pub use root::Root;
