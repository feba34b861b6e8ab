//! Gzip at level 9 with a reused deflate state, byte for byte what
//! `flate2::GzBuilder` writes.
//!
//! A level-9 deflate state is ~270 KB. Allocating a fresh one per log (as
//! `GzBuilder` does) made glibc hand the memory back and fault it in again
//! on the next log: page faults, `madvise` and `sysmalloc` were ~5% of the
//! runner's CPU at 8 workers. A few states are kept and reset instead.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::io::{self, Read, Write};
use std::sync::Mutex;

/// States kept for reuse; more concurrent compressions allocate their own.
const POOL_SIZE: usize = 4;

static POOL: Mutex<Vec<Compress>> = Mutex::new(Vec::new());

/// A raw deflate state at level 9, from the pool if one is free.
struct Pooled(Option<Compress>);

impl Pooled {
    fn take() -> Pooled {
        let reused = POOL.lock().ok().and_then(|mut p| p.pop());
        Pooled(Some(
            reused.unwrap_or_else(|| Compress::new(Compression::best(), false)),
        ))
    }

    fn get(&mut self) -> &mut Compress {
        self.0.as_mut().expect("present until dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // A state dropped mid-stream (an I/O error) is reset like any other.
        if let Some(mut c) = self.0.take() {
            c.reset();
            if let Ok(mut p) = POOL.lock() {
                if p.len() < POOL_SIZE {
                    p.push(c);
                }
            }
        }
    }
}

/// Compress `input` into `out` as one gzip member: header (`name`, if any,
/// as FNAME; `mtime`; XFL 2 for level 9; OS 255, as flate2), raw deflate,
/// CRC-32 and size.
pub fn gzip<R: Read, W: Write>(
    mut input: R,
    mut out: W,
    name: Option<&[u8]>,
    mtime: u32,
) -> io::Result<W> {
    const FNAME: u8 = 0x08;
    let mut header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255];
    header[3] = if name.is_some() { FNAME } else { 0 };
    header[4..8].copy_from_slice(&mtime.to_le_bytes());
    out.write_all(&header)?;
    if let Some(name) = name {
        out.write_all(name)?;
        out.write_all(&[0])?;
    }
    let mut state = Pooled::take();
    let c = state.get();
    let mut crc = Crc::new();
    let mut inbuf = vec![0u8; 32 << 10];
    let mut outbuf = vec![0u8; 32 << 10];
    loop {
        let n = match input.read(&mut inbuf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        crc.update(&inbuf[..n]);
        let flush = if n == 0 {
            FlushCompress::Finish
        } else {
            FlushCompress::None
        };
        let mut data = &inbuf[..n];
        loop {
            let (before_in, before_out) = (c.total_in(), c.total_out());
            let status = c
                .compress(data, &mut outbuf, flush)
                .map_err(io::Error::other)?;
            let consumed = (c.total_in() - before_in) as usize;
            let produced = (c.total_out() - before_out) as usize;
            out.write_all(&outbuf[..produced])?;
            data = &data[consumed..];
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                // All input taken and room left over: nothing is pending.
                _ => data.is_empty() && produced < outbuf.len(),
            };
            if done {
                break;
            }
        }
        if n == 0 {
            break;
        }
    }
    out.write_all(&crc.sum().to_le_bytes())?;
    out.write_all(&crc.amount().to_le_bytes())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flate2_gzip(data: &[u8], name: Option<&[u8]>, mtime: u32) -> Vec<u8> {
        let mut b = flate2::GzBuilder::new().mtime(mtime);
        if let Some(n) = name {
            b = b.filename(n);
        }
        let mut gz = b.write(Vec::new(), Compression::best());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn output_is_byte_for_byte_flate2s_also_from_a_reused_state() {
        // Text-like data past several buffers, so the state is reset mid-way
        // through a long history, and the empty input.
        let long: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("line {} of {}\n", i % 977, i / 13).into_bytes())
            .collect();
        let inputs: [&[u8]; 4] = [b"", b"hello\n", &long, b"hello\n"];
        for (i, data) in inputs.iter().enumerate() {
            for name in [None, Some(&b"worker.log"[..])] {
                let ours = gzip(*data, Vec::new(), name, 1_600_000_000 + i as u32).unwrap();
                assert_eq!(
                    ours,
                    flate2_gzip(data, name, 1_600_000_000 + i as u32),
                    "input {i}, name {name:?}"
                );
            }
        }
    }
}
