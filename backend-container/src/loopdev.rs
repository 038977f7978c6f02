//! Loop devices: a volume image file attached as a block device.
