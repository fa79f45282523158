//! Reading the protobuf wire format: varints, tags and length-delimited payloads.

use super::{MAX_DEPTH, ProtobufError};

pub(super) const VARINT: u8 = 0;
pub(super) const FIXED64: u8 = 1;
pub(super) const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
pub(super) const FIXED32: u8 = 5;

/// One field's value as it appears on the wire.
#[derive(Debug, Clone, Copy)]
pub(super) enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    /// Bytes and the absolute offset where they start.
    Len(&'a [u8], usize),
    /// A (deprecated) group, already skipped.
    Group,
}

impl Wire<'_> {
    pub fn wire_type(&self) -> u8 {
        match self {
            Wire::Varint(_) => VARINT,
            Wire::Fixed64(_) => FIXED64,
            Wire::Fixed32(_) => FIXED32,
            Wire::Len(..) => LEN,
            Wire::Group => START_GROUP,
        }
    }
}

/// A cursor over one message; `base` is the absolute offset of `buf[0]` in the body.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }

    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn varint(&mut self, what: &'static str) -> Result<u64, ProtobufError> {
        let start = self.offset();
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(ProtobufError::Truncated {
                    offset: self.offset(),
                    what,
                });
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(ProtobufError::Invalid {
                    offset: start,
                    reason: format!("{what}: varint overflows 64 bits"),
                });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(ProtobufError::Invalid {
            offset: start,
            reason: format!("{what}: varint longer than 10 bytes"),
        })
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ProtobufError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or(ProtobufError::Truncated {
                offset: self.base + self.buf.len(),
                what,
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub fn fixed<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ProtobufError> {
        let b = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// The next field: its number, its value and the offset where its key starts.
    pub fn field(&mut self) -> Result<Option<(u32, Wire<'a>, usize)>, ProtobufError> {
        if self.at_end() {
            return Ok(None);
        }
        let start = self.offset();
        let key = self.varint("a field key")?;
        let number = key >> 3;
        let wire = (key & 7) as u8;
        let Some(number) = u32::try_from(number)
            .ok()
            .filter(|n| (1..=0x1fff_ffff).contains(n))
        else {
            return Err(ProtobufError::Invalid {
                offset: start,
                reason: format!("field number {number} is out of range"),
            });
        };
        let value = self.value(number, wire, start, 0)?;
        Ok(Some((number, value, start)))
    }

    fn value(
        &mut self,
        number: u32,
        wire: u8,
        start: usize,
        depth: usize,
    ) -> Result<Wire<'a>, ProtobufError> {
        Ok(match wire {
            VARINT => Wire::Varint(self.varint("a varint")?),
            FIXED64 => Wire::Fixed64(u64::from_le_bytes(self.fixed::<8>("a 64-bit value")?)),
            FIXED32 => Wire::Fixed32(u32::from_le_bytes(self.fixed::<4>("a 32-bit value")?)),
            LEN => {
                let len = self.varint("a length")?;
                let len = usize::try_from(len).map_err(|_| ProtobufError::Truncated {
                    offset: self.offset(),
                    what: "a length-delimited value",
                })?;
                let at = self.offset();
                Wire::Len(self.take(len, "a length-delimited value")?, at)
            }
            START_GROUP => {
                self.skip_group(number, depth)?;
                Wire::Group
            }
            END_GROUP => {
                return Err(ProtobufError::Invalid {
                    offset: start,
                    reason: format!("end of group {number} without a start"),
                });
            }
            other => {
                return Err(ProtobufError::Invalid {
                    offset: start,
                    reason: format!("wire type {other} does not exist"),
                });
            }
        })
    }

    /// Skips a group up to its matching end, bounding nested groups.
    fn skip_group(&mut self, number: u32, depth: usize) -> Result<(), ProtobufError> {
        if depth >= MAX_DEPTH {
            return Err(ProtobufError::TooDeep { limit: MAX_DEPTH });
        }
        loop {
            let start = self.offset();
            if self.at_end() {
                return Err(ProtobufError::Truncated {
                    offset: start,
                    what: "a group",
                });
            }
            let key = self.varint("a field key")?;
            let (n, wire) = (key >> 3, (key & 7) as u8);
            if wire == END_GROUP {
                if n == u64::from(number) {
                    return Ok(());
                }
                return Err(ProtobufError::Invalid {
                    offset: start,
                    reason: format!("group {number} ends with end of group {n}"),
                });
            }
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            self.value(n, wire, start, depth + 1)?;
        }
    }
}
