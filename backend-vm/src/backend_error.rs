//! How the VM backend's errors reach isola's `BackendError`: what the host
//! lacks as `Unavailable` (the sentence, with its cause chained beneath it
//! once), every other failure as the step that failed.

use isola_core::backend::BackendError;

use crate::init_binary::InitError;
use crate::kernel::store::KernelStoreError;
use crate::kernel::FindError;

impl From<FindError> for BackendError {
    fn from(e: FindError) -> BackendError {
        match e {
            FindError::Store(KernelStoreError::Io { context, source }) => {
                BackendError::Unavailable {
                    reason: context,
                    source: Some(Box::new(source)),
                }
            }
            other => BackendError::unavailable(other.to_string()),
        }
    }
}

impl From<InitError> for BackendError {
    fn from(e: InitError) -> BackendError {
        match e {
            InitError::OwnBinary(source) => BackendError::Unavailable {
                reason: "cannot find isola's own binary".into(),
                source: Some(Box::new(source)),
            },
            other => BackendError::unavailable(other.to_string()),
        }
    }
}
