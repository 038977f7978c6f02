//! The container backend: namespaces, cgroups and an overlayfs of the image's
//! shared layers. Its implementation arrives with the container-backend issue.
