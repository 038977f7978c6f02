//! Headless Chromium for the tests: a page rendered to a PNG and decoded
//! into pixels, to check that a report is not blank and its charts show.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium-headless-shell";
/// For both screenshots together (each takes about a second here).
const DEADLINE: Duration = Duration::from_secs(20);
/// Tall enough that the first charts show below the machine and subjects
/// tables, which grow with every subject (the lifecycle's peers added four).
pub const SIZE: (usize, usize) = (1280, 3600);

/// Renders `html` to `png` and decodes it.
pub fn screenshot(html: &Path, png: &Path, started: Instant) -> Vec<[u8; 3]> {
    let log = png.with_extension("log");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--no-sandbox",
            "--headless",
            "--disable-gpu",
            "--hide-scrollbars",
            &format!("--window-size={},{}", SIZE.0, SIZE.1),
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // Into a file: a pipe nobody reads could fill and stall the browser.
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium took over {DEADLINE:?}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success() && png.exists(),
        "chromium failed ({status}):\n{log}"
    );
    let image = decode_png(&std::fs::read(png).unwrap());
    assert_eq!((image.width, image.height), SIZE);
    image.pixels
}

/// Coarse hues (3 bits a channel) of the saturated pixels, those covering
/// 300 pixels or more, most first. Text and rules are grey: saturated
/// pixels are marks in colour.
pub fn hues(pixels: &[[u8; 3]]) -> Vec<([u8; 3], usize)> {
    let mut hues: HashMap<[u8; 3], usize> = HashMap::new();
    for p in pixels {
        let (max, min) = (p.iter().max().unwrap(), p.iter().min().unwrap());
        if max - min > 80 {
            *hues.entry([p[0] >> 5, p[1] >> 5, p[2] >> 5]).or_insert(0) += 1;
        }
    }
    let mut solid: Vec<_> = hues.into_iter().filter(|(_, n)| *n >= 300).collect();
    solid.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    solid
}

struct Image {
    width: usize,
    height: usize,
    pixels: Vec<[u8; 3]>,
}

/// Just enough PNG for a browser's screenshot: 8-bit grey, grey + alpha,
/// RGB or RGBA, not interlaced (there is no PNG decoder in the dependency
/// tree, and flate2 is).
fn decode_png(bytes: &[u8]) -> Image {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let (mut width, mut height, mut channels) = (0, 0, 0);
    let mut idat = Vec::new();
    let mut pos = 8;
    while pos + 12 <= bytes.len() {
        let len = be32(&bytes[pos..]);
        let kind = &bytes[pos + 4..pos + 8];
        let data = &bytes[pos + 8..pos + 8 + len];
        pos += 12 + len;
        match kind {
            b"IHDR" => {
                width = be32(data);
                height = be32(&data[4..]);
                let (depth, colour, interlace) = (data[8], data[9], data[12]);
                assert_eq!((depth, interlace), (8, 0), "unsupported PNG layout");
                channels = match colour {
                    0 => 1,
                    2 => 3,
                    4 => 2,
                    6 => 4,
                    other => panic!("unsupported PNG colour type {other}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = width * channels;
    assert_eq!(raw.len(), height * (stride + 1), "truncated image data");

    let mut out = vec![0u8; height * stride];
    for y in 0..height {
        let filter = raw[y * (stride + 1)];
        let line = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
        for x in 0..stride {
            let a = if x >= channels {
                out[y * stride + x - channels]
            } else {
                0
            };
            let b = if y > 0 { out[(y - 1) * stride + x] } else { 0 };
            let c = if x >= channels && y > 0 {
                out[(y - 1) * stride + x - channels]
            } else {
                0
            };
            let predicted = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => paeth(a, b, c),
                other => panic!("bad PNG filter {other}"),
            };
            out[y * stride + x] = line[x].wrapping_add(predicted);
        }
    }
    let pixels = out
        .chunks_exact(channels)
        .map(|p| match channels {
            1 | 2 => [p[0], p[0], p[0]],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    Image {
        width,
        height,
        pixels,
    }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}
