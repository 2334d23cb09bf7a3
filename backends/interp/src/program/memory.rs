//! Where a Program's buffers live while it runs: one byte arena at the planned offsets (with the
//! entries' inputs, copied in at entry start), the program's flash data, and owned slots for
//! parameters, state and arguments.

use mite_ir::program::{BufElem, BufferId, Program, Storage};
use mite_ir::TensorData;

use super::ProgramExecError;

/// The elements of one buffer, copied out of (or into) its storage.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Vals {
    F32(Vec<f32>),
    I8(Vec<i8>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    /// Packed bits, 32 to a word.
    Bits(Vec<u32>),
}

impl Vals {
    pub(crate) fn len(&self) -> usize {
        match self {
            Vals::F32(v) => v.len(),
            Vals::I8(v) => v.len(),
            Vals::I32(v) => v.len(),
            Vals::I64(v) => v.len(),
            Vals::Bits(v) => v.len(),
        }
    }

    pub(crate) fn elem_name(&self) -> &'static str {
        match self {
            Vals::F32(_) => "f32",
            Vals::I8(_) => "i8",
            Vals::I32(_) => "i32",
            Vals::I64(_) => "i64",
            Vals::Bits(_) => "bits",
        }
    }

    /// Zeros for a buffer of `elem` × `len`.
    fn zeros(elem: BufElem, len: usize) -> Vals {
        match elem {
            BufElem::F32 => Vals::F32(vec![0.0; len]),
            BufElem::I8 => Vals::I8(vec![0; len]),
            BufElem::I32 => Vals::I32(vec![0; len]),
            BufElem::I64 => Vals::I64(vec![0; len]),
            BufElem::Bits => Vals::Bits(vec![0; len.div_ceil(32)]),
        }
    }

    fn from_tensor_data(d: &TensorData) -> Option<Vals> {
        Some(match d {
            TensorData::F32(v) => Vals::F32(v.clone()),
            TensorData::I8(v) => Vals::I8(v.clone()),
            TensorData::I32(v) => Vals::I32(v.clone()),
            TensorData::I64(v) => Vals::I64(v.clone()),
            TensorData::I1(_) => return None,
        })
    }

    pub(crate) fn to_tensor_data(&self) -> Option<TensorData> {
        Some(match self {
            Vals::F32(v) => TensorData::F32(v.clone()),
            Vals::I8(v) => TensorData::I8(v.clone()),
            Vals::I32(v) => TensorData::I32(v.clone()),
            Vals::I64(v) => TensorData::I64(v.clone()),
            Vals::Bits(_) => return None,
        })
    }

    fn matches(&self, elem: BufElem) -> bool {
        matches!(
            (self, elem),
            (Vals::F32(_), BufElem::F32)
                | (Vals::I8(_), BufElem::I8)
                | (Vals::I32(_), BufElem::I32)
                | (Vals::I64(_), BufElem::I64)
                | (Vals::Bits(_), BufElem::Bits)
        )
    }
}

/// Decodes `n` elements of `size` bytes each with `f`.
fn decode<T>(bytes: &[u8], size: usize, f: impl Fn(&[u8]) -> T) -> Vec<T> {
    bytes.chunks_exact(size).map(f).collect()
}

/// The storage of a running program.
#[derive(Clone, Debug)]
pub(crate) struct Memory<'p> {
    program: &'p Program,
    arena: Vec<u8>,
    /// Parameters, state and arguments, by buffer index (`None` for arena and flash buffers).
    slots: Vec<Option<Vals>>,
}

impl<'p> Memory<'p> {
    pub(crate) fn new(program: &'p Program) -> Result<Memory<'p>, ProgramExecError> {
        let arena_len =
            usize::try_from(program.arena_bytes).map_err(|_| ProgramExecError::Buffer {
                buffer: BufferId(0),
                what: format!(
                    "an arena of {} bytes does not fit in memory",
                    program.arena_bytes
                ),
            })?;
        let mut slots = Vec::with_capacity(program.buffers.len());
        for (i, b) in program.buffers.iter().enumerate() {
            let id = BufferId(i as u32);
            slots.push(match &b.storage {
                Storage::Param { init, .. } => Some(
                    Vals::from_tensor_data(init)
                        .filter(|v| v.matches(b.elem) && v.len() == b.len)
                        .ok_or_else(|| ProgramExecError::Buffer {
                            buffer: id,
                            what: "initial data does not fit the parameter".into(),
                        })?,
                ),
                Storage::State { .. } | Storage::Arg { .. } => Some(Vals::zeros(b.elem, b.len)),
                Storage::Arena { .. } | Storage::Input { .. } | Storage::Flash { .. } => None,
            });
        }
        Ok(Memory {
            program,
            arena: vec![0; arena_len],
            slots,
        })
    }

    /// The parameters' and state's current values (to restore after a failed step).
    pub(crate) fn sram_snapshot(&self) -> Vec<(usize, Vals)> {
        self.program
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| matches!(b.storage, Storage::Param { .. } | Storage::State { .. }))
            .filter_map(|(i, _)| Some((i, self.slots[i].clone()?)))
            .collect()
    }

    pub(crate) fn restore(&mut self, saved: Vec<(usize, Vals)>) {
        for (i, v) in saved {
            self.slots[i] = Some(v);
        }
    }

    pub(crate) fn slot(&self, id: BufferId) -> Option<&Vals> {
        self.slots.get(id.index())?.as_ref()
    }

    pub(crate) fn set_arg(&mut self, id: BufferId, v: Vals) {
        self.slots[id.index()] = Some(v);
    }

    /// The arena bytes of buffer `id`, if it lives in the arena.
    fn arena_range(&self, id: BufferId) -> Result<Option<std::ops::Range<usize>>, String> {
        let b = self
            .program
            .buffers
            .get(id.index())
            .ok_or_else(|| format!("no buffer {id}"))?;
        let Some(offset) = b.storage.arena_offset() else {
            return Ok(None);
        };
        let start = usize::try_from(offset).map_err(|_| format!("{id}: offset {offset}"))?;
        let end = start + b.bytes() as usize;
        if end > self.arena.len() {
            return Err(format!(
                "{id} ({}) ends at byte {end}, past the arena",
                b.name
            ));
        }
        Ok(Some(start..end))
    }

    /// Copies the caller's `image` into the arena bytes of input buffer `id` (the entry's
    /// copy-in, before its first call).
    pub(crate) fn copy_in(&mut self, id: BufferId, image: &[i8]) -> Result<(), String> {
        let b = &self.program.buffers[id.index()];
        if !matches!(b.storage, Storage::Input { .. }) || b.elem != BufElem::I8 {
            return Err(format!("{id} ({}) is not an i8 input in the arena", b.name));
        }
        let r = self
            .arena_range(id)?
            .ok_or_else(|| format!("{id} ({}) is not in the arena", b.name))?;
        encode(&mut self.arena[r], image, |x| x.to_ne_bytes());
        Ok(())
    }

    /// A copy of buffer `id`'s elements.
    pub(crate) fn read(&self, id: BufferId) -> Result<Vals, String> {
        let b = &self.program.buffers[id.index()];
        if let Some(r) = self.arena_range(id)? {
            let bytes = &self.arena[r];
            return Ok(match b.elem {
                BufElem::F32 => Vals::F32(decode(bytes, 4, |c| {
                    f32::from_ne_bytes([c[0], c[1], c[2], c[3]])
                })),
                BufElem::I8 => Vals::I8(bytes.iter().map(|&x| x as i8).collect()),
                BufElem::I32 => Vals::I32(decode(bytes, 4, |c| {
                    i32::from_ne_bytes([c[0], c[1], c[2], c[3]])
                })),
                BufElem::Bits => Vals::Bits(decode(bytes, 4, |c| {
                    u32::from_ne_bytes([c[0], c[1], c[2], c[3]])
                })),
                BufElem::I64 => Vals::I64(decode(bytes, 8, |c| {
                    i64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                })),
            });
        }
        match &b.storage {
            Storage::Flash { data, .. } => Vals::from_tensor_data(data)
                .ok_or_else(|| format!("{id} ({}): flash data of i1 elements", b.name)),
            _ => self.slots[id.index()]
                .clone()
                .ok_or_else(|| format!("{id} ({}) has no value", b.name)),
        }
    }

    /// Stores `v` into buffer `id`.
    pub(crate) fn write(&mut self, id: BufferId, v: Vals) -> Result<(), String> {
        let b = &self.program.buffers[id.index()];
        let expected = match b.elem {
            BufElem::Bits => b.len.div_ceil(32),
            _ => b.len,
        };
        if !v.matches(b.elem) || v.len() != expected {
            return Err(format!(
                "writing {} {} elements into {id} ({}: {} x {})",
                v.len(),
                v.elem_name(),
                b.name,
                b.elem.name(),
                b.len
            ));
        }
        if let Some(r) = self.arena_range(id)? {
            let out = &mut self.arena[r];
            match v {
                Vals::F32(v) => encode(out, &v, |x| x.to_ne_bytes()),
                Vals::I32(v) => encode(out, &v, |x| x.to_ne_bytes()),
                Vals::Bits(v) => encode(out, &v, |x| x.to_ne_bytes()),
                Vals::I64(v) => encode(out, &v, |x| x.to_ne_bytes()),
                Vals::I8(v) => encode(out, &v, |x| x.to_ne_bytes()),
            }
            return Ok(());
        }
        match b.storage {
            Storage::Param { .. } | Storage::State { .. } => {
                self.slots[id.index()] = Some(v);
                Ok(())
            }
            _ => Err(format!(
                "{id} ({}) is read-only ({})",
                b.name,
                b.storage.kind()
            )),
        }
    }
}

fn encode<T: Copy, const N: usize>(out: &mut [u8], v: &[T], f: impl Fn(T) -> [u8; N]) {
    for (o, &x) in out.chunks_exact_mut(N).zip(v) {
        o.copy_from_slice(&f(x));
    }
}
