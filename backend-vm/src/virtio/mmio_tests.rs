//! The virtio-mmio register file as Linux's driver programs it: identity,
//! feature negotiation (legacy refused), queue set-up, a notification
//! served with an interrupt, acknowledgement and reset; and the bus.

use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_blk::VIRTIO_BLK_T_GET_ID;
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1,
};
use virtio_bindings::virtio_mmio as reg;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::block::Block;
use super::testing::{blk_header, memory, readable, writable, Driver, BUFFERS};
use super::{Interrupt, MmioBus, MmioTransport, MMIO_SIZE};

const HANDSHAKE: u32 = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER;

fn transport(mem: &GuestMemoryMmap) -> MmioTransport {
    let file = tempfile::tempfile().unwrap();
    file.set_len(1 << 20).unwrap();
    let block = Block::new(file, false, b"disk-1").unwrap();
    let interrupt = Arc::new(Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    MmioTransport::new(Box::new(block), mem.clone(), interrupt)
}

fn r(t: &mut MmioTransport, offset: u32) -> u32 {
    let mut data = [0u8; 4];
    t.read(u64::from(offset), &mut data);
    u32::from_le_bytes(data)
}

fn w(t: &mut MmioTransport, offset: u32, value: u32) {
    t.write(u64::from(offset), &value.to_le_bytes());
}

/// Negotiate `features` as Linux does; the status the device kept.
fn negotiate(t: &mut MmioTransport, features: u64) -> u32 {
    w(t, reg::VIRTIO_MMIO_STATUS, 0);
    w(t, reg::VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    w(t, reg::VIRTIO_MMIO_STATUS, HANDSHAKE);
    for sel in 0..2 {
        w(t, reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
        w(
            t,
            reg::VIRTIO_MMIO_DRIVER_FEATURES,
            (features >> (32 * sel)) as u32,
        );
    }
    w(
        t,
        reg::VIRTIO_MMIO_STATUS,
        HANDSHAKE | VIRTIO_CONFIG_S_FEATURES_OK,
    );
    r(t, reg::VIRTIO_MMIO_STATUS)
}

/// Queue 0 at the driver's rings, then DRIVER_OK.
fn set_up_queue(t: &mut MmioTransport, driver: &Driver, size: u32) {
    let [desc, avail, used] = driver.addresses();
    w(t, reg::VIRTIO_MMIO_QUEUE_SEL, 0);
    assert_eq!(r(t, reg::VIRTIO_MMIO_QUEUE_READY), 0);
    w(t, reg::VIRTIO_MMIO_QUEUE_NUM, size);
    for (low, value) in [
        (reg::VIRTIO_MMIO_QUEUE_DESC_LOW, desc),
        (reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW, avail),
        (reg::VIRTIO_MMIO_QUEUE_USED_LOW, used),
    ] {
        w(t, low, value as u32);
        w(t, low + 4, (value >> 32) as u32);
    }
    w(t, reg::VIRTIO_MMIO_QUEUE_READY, 1);
    let status = r(t, reg::VIRTIO_MMIO_STATUS);
    w(
        t,
        reg::VIRTIO_MMIO_STATUS,
        status | VIRTIO_CONFIG_S_DRIVER_OK,
    );
}

fn device_features(t: &mut MmioTransport) -> u64 {
    w(t, reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    let low = r(t, reg::VIRTIO_MMIO_DEVICE_FEATURES);
    w(t, reg::VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    let high = r(t, reg::VIRTIO_MMIO_DEVICE_FEATURES);
    u64::from(high) << 32 | u64::from(low)
}

#[test]
fn it_says_what_it_is() {
    let mem = memory();
    let mut t = transport(&mem);
    assert_eq!(r(&mut t, reg::VIRTIO_MMIO_MAGIC_VALUE), 0x7472_6976);
    assert_eq!(r(&mut t, reg::VIRTIO_MMIO_VERSION), 2);
    assert_eq!(r(&mut t, reg::VIRTIO_MMIO_DEVICE_ID), 2);
    assert_ne!(device_features(&mut t) & (1 << VIRTIO_F_VERSION_1), 0);
    w(&mut t, reg::VIRTIO_MMIO_QUEUE_SEL, 0);
    assert_eq!(r(&mut t, reg::VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
    w(&mut t, reg::VIRTIO_MMIO_QUEUE_SEL, 1);
    assert_eq!(
        r(&mut t, reg::VIRTIO_MMIO_QUEUE_NUM_MAX),
        0,
        "one queue only"
    );
    // The block device's config space: capacity in sectors, first.
    let mut capacity = [0u8; 8];
    t.read(0x100, &mut capacity);
    assert_eq!(u64::from_le_bytes(capacity), 2048);
}

#[test]
fn only_offered_features_with_version_1_are_accepted() {
    let mem = memory();
    let mut t = transport(&mem);
    let offered = device_features(&mut t);
    assert_eq!(negotiate(&mut t, 0), HANDSHAKE, "a legacy driver");
    assert_eq!(
        negotiate(&mut t, offered | 1 << 40),
        HANDSHAKE,
        "a feature not offered"
    );
    assert_eq!(
        negotiate(&mut t, 1 << VIRTIO_F_VERSION_1),
        HANDSHAKE | VIRTIO_CONFIG_S_FEATURES_OK
    );
    // Features are fixed once agreed.
    w(&mut t, reg::VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    w(&mut t, reg::VIRTIO_MMIO_DRIVER_FEATURES, 0);
    let status = r(&mut t, reg::VIRTIO_MMIO_STATUS);
    assert_eq!(status, HANDSHAKE | VIRTIO_CONFIG_S_FEATURES_OK);
}

#[test]
fn a_notified_queue_is_served_and_interrupts() {
    let mem = memory();
    let mut t = transport(&mem);
    let mut driver = Driver::new(&mem);
    negotiate(&mut t, 1 << VIRTIO_F_VERSION_1);
    set_up_queue(&mut t, &driver, 16);
    assert_ne!(
        r(&mut t, reg::VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK,
        0
    );

    driver.write(BUFFERS, &blk_header(VIRTIO_BLK_T_GET_ID, 0));
    driver.offer(&[
        readable(BUFFERS, 16),
        writable(BUFFERS + 0x100, 20),
        writable(BUFFERS + 0x200, 1),
    ]);
    w(&mut t, reg::VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    assert_eq!(driver.used_count(), 1);
    assert_eq!(&driver.read(BUFFERS + 0x100, 6), b"disk-1");
    assert_eq!(r(&mut t, reg::VIRTIO_MMIO_INTERRUPT_STATUS), 1);
    assert_eq!(
        t.interrupt().trigger().read().unwrap(),
        1,
        "the line was raised"
    );
    w(&mut t, reg::VIRTIO_MMIO_INTERRUPT_ACK, 1);
    assert_eq!(r(&mut t, reg::VIRTIO_MMIO_INTERRUPT_STATUS), 0);

    // Set-up registers are frozen while the device is live.
    w(&mut t, reg::VIRTIO_MMIO_QUEUE_DESC_LOW, 0x8000);
    assert_eq!(
        r(&mut t, reg::VIRTIO_MMIO_QUEUE_DESC_LOW),
        driver.addresses()[0] as u32
    );

    w(&mut t, reg::VIRTIO_MMIO_STATUS, 0);
    assert_eq!(r(&mut t, reg::VIRTIO_MMIO_STATUS), 0);
    assert_eq!(r(&mut t, reg::VIRTIO_MMIO_QUEUE_READY), 0, "reset");
    driver.offer(&[readable(BUFFERS, 16), writable(BUFFERS + 0x200, 1)]);
    w(&mut t, reg::VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    assert_eq!(driver.used_count(), 1, "a reset device serves nothing");
}

#[test]
fn a_queue_outside_guest_memory_needs_a_reset() {
    let mem = memory();
    let mut t = transport(&mem);
    negotiate(&mut t, 1 << VIRTIO_F_VERSION_1);
    w(&mut t, reg::VIRTIO_MMIO_QUEUE_SEL, 0);
    w(&mut t, reg::VIRTIO_MMIO_QUEUE_NUM, 16);
    w(&mut t, reg::VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x10);
    w(&mut t, reg::VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x1000);
    w(&mut t, reg::VIRTIO_MMIO_QUEUE_USED_LOW, 0x2000);
    w(&mut t, reg::VIRTIO_MMIO_QUEUE_READY, 1);
    let status = r(&mut t, reg::VIRTIO_MMIO_STATUS);
    w(
        &mut t,
        reg::VIRTIO_MMIO_STATUS,
        status | VIRTIO_CONFIG_S_DRIVER_OK,
    );
    assert_ne!(
        r(&mut t, reg::VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET,
        0
    );
    assert_eq!(
        r(&mut t, reg::VIRTIO_MMIO_INTERRUPT_STATUS),
        2,
        "a config change"
    );
    w(&mut t, reg::VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

#[test]
fn registers_are_read_and_written_32_bits_wide() {
    let mem = memory();
    let mut t = transport(&mem);
    let mut half = [0xffu8; 2];
    t.read(u64::from(reg::VIRTIO_MMIO_MAGIC_VALUE), &mut half);
    assert_eq!(half, [0, 0]);
    t.write(u64::from(reg::VIRTIO_MMIO_STATUS), &[1, 0]);
    assert_eq!(r(&mut t, reg::VIRTIO_MMIO_STATUS), 0);
    // Bits are only added; clearing one is ignored, 0 resets.
    w(&mut t, reg::VIRTIO_MMIO_STATUS, HANDSHAKE);
    w(&mut t, reg::VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
    assert_eq!(r(&mut t, reg::VIRTIO_MMIO_STATUS), HANDSHAKE);
}

#[test]
fn the_bus_finds_a_device_by_address() {
    let mem = memory();
    let mut bus = MmioBus::new(0xd000_0000);
    bus.add(Arc::new(Mutex::new(transport(&mem))));
    bus.add(Arc::new(Mutex::new(transport(&mem))));
    assert_eq!(bus.next_address(), 0xd000_0000 + 2 * MMIO_SIZE);
    let mut data = [0u8; 4];
    assert!(bus.read(0xd000_1000, &mut data));
    assert_eq!(u32::from_le_bytes(data), 0x7472_6976);
    assert!(!bus.read(0xd000_2000, &mut data), "past the last device");
    assert!(!bus.read(0xcfff_fffc, &mut data), "below the first");
    assert!(!bus.read(0xd000_0ffe, &mut data), "across two windows");
    assert!(bus.write(0xd000_1070, &HANDSHAKE.to_le_bytes()));
    let status = bus.devices()[1].lock().unwrap().status();
    assert_eq!(status, HANDSHAKE);
}
