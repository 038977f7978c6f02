//! How the VM backend's errors reach isola's `BackendError`: what the host
//! lacks as `Unavailable` (the error's own sentence, with its cause chained
//! beneath it once), every other failure as the step that failed.

use std::error::Error;

use isola_core::backend::BackendError;

use crate::init_binary::InitError;
use crate::kernel::store::KernelStoreError;
use crate::kernel::FindError;
use crate::kvm::{KvmUnavailable, VmError};
use crate::monitor::{MonitorError, QemuError};

/// `Unavailable` with `reason` and, if there is one, the cause beneath it.
fn unavailable(reason: String, cause: Option<impl Error + Send + Sync + 'static>) -> BackendError {
    BackendError::Unavailable {
        reason,
        source: cause.map(|c| Box::new(c) as Box<dyn Error + Send + Sync>),
    }
}

impl From<FindError> for BackendError {
    fn from(e: FindError) -> BackendError {
        let reason = e.to_string();
        let cause = match e {
            FindError::Store(KernelStoreError::Io { source, .. }) => Some(source),
            _ => None,
        };
        unavailable(reason, cause)
    }
}

impl From<InitError> for BackendError {
    fn from(e: InitError) -> BackendError {
        let reason = e.to_string();
        let cause = match e {
            InitError::OwnBinary(source) => Some(source),
            _ => None,
        };
        unavailable(reason, cause)
    }
}

impl From<MonitorError> for BackendError {
    fn from(e: MonitorError) -> BackendError {
        let reason = e.to_string();
        match e {
            MonitorError::Kvm(VmError::Unavailable(u)) => {
                let cause = match u {
                    KvmUnavailable::Open(source) => Some(source),
                    _ => None,
                };
                unavailable(reason, cause)
            }
            MonitorError::Qemu(QemuError::Spawn(source)) => unavailable(reason, Some(source)),
            MonitorError::Qemu(QemuError::NotInstalled) => BackendError::unavailable(reason),
            other => BackendError::step("running the guest", other),
        }
    }
}
