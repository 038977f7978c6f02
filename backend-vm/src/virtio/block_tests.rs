//! virtio-blk against in-memory guest memory and a temporary file: each
//! request type, the read-only disk, and every malformed chain refused.

use std::io::Write;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_RO, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};

use super::block::Block;
use super::block_file::MAX_REQUEST_BYTES;
use super::testing::{blk_header, memory, readable, writable, Driver, BUFFERS};
use super::VirtioDevice;

const HEADER: u64 = BUFFERS;
const DATA: u64 = BUFFERS + 0x1000;
const STATUS: u64 = BUFFERS + 0x800;
/// Not a status any request ends with: shows the device left it alone.
const UNTOUCHED: u8 = 0xaa;

/// A descriptor as the driver writes it: address, length, flags.
type Desc = (u64, u32, u16);

/// A 64 KiB disk whose byte i is i % 251, read-write or not.
fn disk(read_only: bool) -> (Block, tempfile::NamedTempFile) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let bytes: Vec<u8> = (0..64 << 10).map(|i| (i % 251) as u8).collect();
    file.write_all(&bytes).unwrap();
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .write(!read_only)
        .open(file.path())
        .unwrap();
    (Block::new(handle, read_only, b"vol-data").unwrap(), file)
}

/// Offer `descs` with the header `kind`/`sector` at HEADER, run the queue,
/// and give the used entry's length and the status byte.
fn request(block: &mut Block, driver: &mut Driver, descs: &[Desc]) -> (u32, u8) {
    driver.write(STATUS, &[UNTOUCHED]);
    let mut queues = [driver.queue()];
    let before = driver.used_count();
    driver.offer(descs);
    block.process_queue(0, &mut queues, driver.mem);
    assert_eq!(driver.used_count(), before + 1, "the request was returned");
    (driver.used(before).1, driver.byte(STATUS))
}

fn ok_request(
    block: &mut Block,
    driver: &mut Driver,
    kind: u32,
    sector: u64,
    data: Desc,
) -> (u32, u8) {
    driver.write(HEADER, &blk_header(kind, sector));
    request(
        block,
        driver,
        &[readable(HEADER, 16), data, writable(STATUS, 1)],
    )
}

#[test]
fn reads_sectors_into_guest_memory() {
    let (mut block, _file) = disk(false);
    let mem = memory();
    let mut driver = Driver::new(&mem);
    let (len, status) = ok_request(
        &mut block,
        &mut driver,
        VIRTIO_BLK_T_IN,
        2,
        writable(DATA, 1024),
    );
    assert_eq!(status, VIRTIO_BLK_S_OK as u8);
    assert_eq!(len, 1025, "data and status byte");
    let expected: Vec<u8> = (1024..2048).map(|i| (i % 251) as u8).collect();
    assert_eq!(driver.read(DATA, 1024), expected);
}

#[test]
fn writes_reach_the_file() {
    let (mut block, file) = disk(false);
    let mem = memory();
    let mut driver = Driver::new(&mem);
    driver.write(DATA, &[0x5a; 512]);
    let (len, status) = ok_request(
        &mut block,
        &mut driver,
        VIRTIO_BLK_T_OUT,
        3,
        readable(DATA, 512),
    );
    assert_eq!((len, status), (1, VIRTIO_BLK_S_OK as u8));
    let on_disk = std::fs::read(file.path()).unwrap();
    assert_eq!(&on_disk[3 * 512..4 * 512], &[0x5a; 512][..]);
    assert_eq!(
        on_disk[4 * 512],
        ((4 * 512) % 251) as u8,
        "nothing past the request"
    );
}

#[test]
fn flush_and_get_id() {
    let (mut block, _file) = disk(false);
    let mem = memory();
    let mut driver = Driver::new(&mem);
    driver.write(HEADER, &blk_header(VIRTIO_BLK_T_FLUSH, 0));
    let (_, status) = request(
        &mut block,
        &mut driver,
        &[readable(HEADER, 16), writable(STATUS, 1)],
    );
    assert_eq!(status, VIRTIO_BLK_S_OK as u8);

    let (len, status) = ok_request(
        &mut block,
        &mut driver,
        VIRTIO_BLK_T_GET_ID,
        0,
        writable(DATA, 20),
    );
    assert_eq!((len, status), (21, VIRTIO_BLK_S_OK as u8));
    assert_eq!(driver.read(DATA, 20), b"vol-data\0\0\0\0\0\0\0\0\0\0\0\0");
}

#[test]
fn a_serial_is_cut_to_twenty_bytes() {
    let file = tempfile::tempfile().unwrap();
    let block = Block::new(file, true, b"0123456789abcdefghijKLMN").unwrap();
    assert_eq!(&block.disk.id, b"0123456789abcdefghij");
}

#[test]
fn a_read_only_disk_says_so_and_refuses_writes() {
    let (mut block, file) = disk(true);
    assert_ne!(block.features() & (1 << VIRTIO_BLK_F_RO), 0);
    let mem = memory();
    let mut driver = Driver::new(&mem);
    driver.write(DATA, &[0x5a; 512]);
    let (_, status) = ok_request(
        &mut block,
        &mut driver,
        VIRTIO_BLK_T_OUT,
        0,
        readable(DATA, 512),
    );
    assert_eq!(status, VIRTIO_BLK_S_IOERR as u8);
    assert_eq!(std::fs::read(file.path()).unwrap()[0], 0);
    let (_, status) = ok_request(
        &mut block,
        &mut driver,
        VIRTIO_BLK_T_IN,
        0,
        writable(DATA, 512),
    );
    assert_eq!(status, VIRTIO_BLK_S_OK as u8, "reads still work");
}

#[test]
fn capacity_is_in_whole_sectors() {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&[1u8; 1300]).unwrap();
    let block = Block::new(file, true, b"").unwrap();
    assert_eq!(block.capacity(), 2);
    let mut config = [0u8; 8];
    block.read_config(0, &mut config);
    assert_eq!(u64::from_le_bytes(config), 2);
}

#[test]
fn requests_beyond_the_end_are_refused() {
    let (mut block, _file) = disk(false);
    let mem = memory();
    let mut driver = Driver::new(&mem);
    let last = block.capacity() - 1;
    let (_, status) = ok_request(
        &mut block,
        &mut driver,
        VIRTIO_BLK_T_IN,
        last,
        writable(DATA, 512),
    );
    assert_eq!(status, VIRTIO_BLK_S_OK as u8, "the last sector");
    for sector in [last, block.capacity(), u64::MAX] {
        let (_, status) = ok_request(
            &mut block,
            &mut driver,
            VIRTIO_BLK_T_IN,
            sector,
            writable(DATA, 1024),
        );
        assert_eq!(status, VIRTIO_BLK_S_IOERR as u8, "sector {sector}");
        let (_, status) = ok_request(
            &mut block,
            &mut driver,
            VIRTIO_BLK_T_OUT,
            sector,
            readable(DATA, 1024),
        );
        assert_eq!(status, VIRTIO_BLK_S_IOERR as u8, "sector {sector}");
    }
}

#[test]
fn unknown_types_are_unsupported() {
    let (mut block, _file) = disk(false);
    let mem = memory();
    let mut driver = Driver::new(&mem);
    for kind in [2, 11, 13, 0xffff_ffff] {
        driver.write(HEADER, &blk_header(kind, 0));
        let (_, status) = request(
            &mut block,
            &mut driver,
            &[readable(HEADER, 16), writable(STATUS, 1)],
        );
        assert_eq!(status, VIRTIO_BLK_S_UNSUPP as u8, "type {kind}");
    }
}

#[test]
fn malformed_chains_get_an_error_status() {
    let (mut block, file) = disk(false);
    let before = std::fs::read(file.path()).unwrap();
    let mem = memory();
    let mut driver = Driver::new(&mem);
    driver.write(HEADER, &blk_header(VIRTIO_BLK_T_OUT, 0));
    let cases: [(&str, Vec<Desc>); 7] = [
        (
            "a short header",
            vec![readable(HEADER, 8), writable(STATUS, 1)],
        ),
        (
            "a writable header",
            vec![writable(HEADER, 16), writable(STATUS, 1)],
        ),
        (
            "write data the device may write",
            vec![
                readable(HEADER, 16),
                writable(DATA, 512),
                writable(STATUS, 1),
            ],
        ),
        (
            "a partial sector",
            vec![
                readable(HEADER, 16),
                readable(DATA, 100),
                writable(STATUS, 1),
            ],
        ),
        (
            "readable after writable",
            vec![
                readable(HEADER, 16),
                writable(DATA, 512),
                readable(DATA, 512),
                writable(STATUS, 1),
            ],
        ),
        (
            "data outside guest memory",
            vec![
                readable(HEADER, 16),
                readable(u64::MAX - 511, 512),
                writable(STATUS, 1),
            ],
        ),
        (
            "oversize",
            vec![
                readable(HEADER, 16),
                readable(DATA, (MAX_REQUEST_BYTES + 512) as u32),
                writable(STATUS, 1),
            ],
        ),
    ];
    for (what, descs) in cases {
        let (len, status) = request(&mut block, &mut driver, &descs);
        assert_eq!(status, VIRTIO_BLK_S_IOERR as u8, "{what}");
        assert_eq!(len, 1, "{what}: only the status written");
    }
    driver.write(HEADER, &blk_header(VIRTIO_BLK_T_IN, 0));
    let (_, status) = request(
        &mut block,
        &mut driver,
        &[
            readable(HEADER, 16),
            readable(DATA, 512),
            writable(STATUS, 1),
        ],
    );
    assert_eq!(
        status, VIRTIO_BLK_S_IOERR as u8,
        "read data the device may only read"
    );
    assert_eq!(
        std::fs::read(file.path()).unwrap(),
        before,
        "the disk is unchanged"
    );
}

#[test]
fn chains_without_a_status_byte_are_returned_unanswered() {
    let (mut block, _file) = disk(false);
    let mem = memory();
    let mut driver = Driver::new(&mem);
    driver.write(HEADER, &blk_header(VIRTIO_BLK_T_IN, 0));
    for descs in [
        vec![readable(HEADER, 16)],
        vec![readable(HEADER, 16), readable(STATUS, 1)],
        vec![
            readable(HEADER, 16),
            writable(u64::MAX - 0xfff, 512),
            writable(STATUS, 1),
        ],
    ] {
        let (len, status) = request(&mut block, &mut driver, &descs);
        assert_eq!((len, status), (0, UNTOUCHED));
    }
}

#[test]
fn loops_and_bad_heads_do_not_hang_or_panic() {
    let (mut block, _file) = disk(false);
    let mem = memory();
    let driver = Driver::new(&mem);
    driver.write(HEADER, &blk_header(VIRTIO_BLK_T_IN, 0));
    // 0 → 1 → 0 → ...: the chain ends after the queue size in descriptors.
    let flags = VRING_DESC_F_NEXT as u16;
    driver.raw(0, HEADER, 16, flags, 1);
    driver.raw(1, DATA, 512, flags | VRING_DESC_F_WRITE as u16, 0);
    driver.make_available(0);
    // A head past the table, and a next index past it.
    driver.make_available(200);
    driver.raw(2, HEADER, 16, flags, 999);
    driver.make_available(2);
    let mut queues = [driver.queue()];
    block.process_queue(0, &mut queues, &mem);
    assert_eq!(
        driver.used_count(),
        2,
        "both real heads returned, the made-up one dropped"
    );
}
