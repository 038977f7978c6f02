//! isola-core: what both backends share. Today that is the image store (layers
//! stored and unpacked once, shared by every image); the run spec, the backend
//! trait, volumes and instances join it as the backends arrive.

pub mod backend;
pub mod explain;
pub mod fsutil;
pub mod image;
pub mod instance;
pub mod root;
pub mod scratch;
pub mod spec;
pub mod terminal;
pub mod user;
pub mod volume;

pub use root::Root;
