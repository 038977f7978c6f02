//! A layer as an image's manifest and config name it: what the build
//! stacks, the cache records and the store keeps.

use oci_spec::image::{Descriptor, Digest, MediaType};
use serde::{Deserialize, Serialize};

/// A layer of the image being built, as its manifest and config name it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LayerRef {
    pub diff_id: Digest,
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

impl LayerRef {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            MediaType::from(self.media_type.as_str()),
            self.size,
            self.digest.clone(),
        )
    }
}
