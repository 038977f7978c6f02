//! Named volumes: sparse ext4 images under volumes/, shared by both backends.
