//! A made-up interpreter in a sparse memory, laid out like each version's
//! (tests only): the walk and the code reader are checked against it for
//! every layout kind, and their refusals against what it gets wrong on
//! purpose. Real interpreters check the same code in `tests/`.

use std::collections::BTreeMap;

use super::{Memory, Runtime, Unreadable};
use crate::cpython::debug_offsets::{DebugOffsets, tests::table_3_14};
use crate::cpython::layout::{FrameAnchor, GilHolder, PositionKind, StackLayout};
use crate::cpython::linetable::LineTableKind;

/// The layout of 3.`minor` (3.13 and 3.15 borrow 3.14's offsets: the
/// walk does not depend on which).
pub fn layout(minor: u8) -> StackLayout {
    if minor <= 12 {
        return StackLayout::from_table(minor).unwrap();
    }
    let table = DebugOffsets::parse(&table_3_14()).unwrap();
    StackLayout {
        minor,
        code_tag_bits: if minor >= 14 { 3 } else { 0 },
        ..StackLayout::from_debug_offsets(&table, 14).unwrap()
    }
}

/// The fake process.
#[derive(Debug, Clone)]
pub struct FakeProcess {
    regions: BTreeMap<u64, Vec<u8>>,
    next: u64,
    layout: StackLayout,
    runtime: u64,
    interp: u64,
    code_type: u64,
    str_type: u64,
    bytes_type: u64,
}

impl Memory for FakeProcess {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let (start, data) = self
            .regions
            .range(..=address)
            .next_back()
            .ok_or(Unreadable(address))?;
        let at = (address - start) as usize;
        let end = at + buf.len();
        if end > data.len() {
            return Err(Unreadable(address));
        }
        buf.copy_from_slice(&data[at..end]);
        Ok(())
    }
}

impl FakeProcess {
    /// An interpreter of 3.`minor` with no threads.
    pub fn new(minor: u8) -> FakeProcess {
        let mut p = FakeProcess {
            regions: BTreeMap::new(),
            next: 0x10_0000,
            layout: layout(minor),
            runtime: 0,
            interp: 0,
            code_type: 0,
            str_type: 0,
            bytes_type: 0,
        };
        p.runtime = p.alloc(0x2000);
        p.interp = p.alloc(0x4000);
        p.code_type = p.alloc(0x100);
        p.str_type = p.alloc(0x100);
        p.bytes_type = p.alloc(0x100);
        let head = p.runtime + u64::from(p.layout.interpreters_head);
        p.put_u64(head, p.interp);
        p
    }

    fn alloc(&mut self, size: usize) -> u64 {
        let at = self.next;
        self.regions.insert(at, vec![0; size]);
        self.next += (size as u64).next_multiple_of(0x1000) + 0x1000;
        at
    }

    fn put(&mut self, address: u64, bytes: &[u8]) {
        let (start, data) = self.regions.range_mut(..=address).next_back().unwrap();
        let at = (address - start) as usize;
        data[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn put_u64(&mut self, address: u64, v: u64) {
        self.put(address, &v.to_le_bytes());
    }

    fn put_u32(&mut self, address: u64, v: u32) {
        self.put(address, &v.to_le_bytes());
    }

    /// An object of type `type_` and nothing else.
    pub fn object(&mut self, type_: u64) -> u64 {
        let at = self.alloc(0x100);
        self.put_u64(at + u64::from(self.layout.object_type), type_);
        at
    }

    fn str(&mut self, s: &str) -> u64 {
        let l = self.layout;
        let widest = s.chars().map(|c| c as u32).max().unwrap_or(0);
        let kind: u8 = match widest {
            0..=0xff => 1,
            0x100..=0xffff => 2,
            _ => 4,
        };
        let ascii = widest < 0x80;
        let at = self.object(self.str_type);
        self.put_u64(at + u64::from(l.str_length), s.chars().count() as u64);
        let state = (kind << 2) | (1 << 5) | (u8::from(ascii) << 6);
        self.put(at + u64::from(l.str_state), &[state]);
        let data: Vec<u8> = s
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes()[..usize::from(kind)].to_vec())
            .collect();
        let start = if ascii {
            l.str_ascii_size
        } else {
            l.str_compact_size
        };
        self.put(at + u64::from(start), &data);
        at
    }

    fn bytes(&mut self, b: &[u8]) -> u64 {
        let l = self.layout;
        let at = self.object(self.bytes_type);
        self.put_u64(at + u64::from(l.bytes_size), b.len() as u64);
        self.put(at + u64::from(l.bytes_data), b);
        at
    }

    /// A code object named `qualname` (its name is the last dotted part)
    /// whose every instruction is on `first_line + 1`.
    pub fn code(&mut self, qualname: &str, file: &str, first_line: u32) -> u64 {
        let l = self.layout;
        let name = qualname.rsplit('.').next().unwrap();
        let (name, file) = (self.str(name), self.str(file));
        let qualname = self.str(qualname);
        let table: &[u8] = match l.line_table {
            LineTableKind::Lnotab => &[0, 1],
            LineTableKind::Pep626 => &[254, 1],
            LineTableKind::Locations => &[0x80 | (13 << 3) | 7, 2, 0x80 | (13 << 3) | 7, 0],
        };
        let table = self.bytes(table);
        let at = self.object(self.code_type);
        self.put_u64(at + u64::from(l.code_name), name);
        self.put_u64(at + u64::from(l.code_filename), file);
        self.put_u32(at + u64::from(l.code_first_line), first_line);
        if let Some(off) = l.code_qualname {
            self.put_u64(at + u64::from(off), qualname);
        }
        self.put_u64(at + u64::from(l.code_linetable), table);
        at
    }

    /// A thread with `frames` (code, byte offset), innermost first; a code
    /// of 0 is an interpreter shim (3.12+).
    pub fn thread(&mut self, thread_id: u64, native: Option<u32>, frames: &[(u64, u64)]) -> u64 {
        let l = self.layout;
        let tstate = self.alloc(0x400);
        self.put_u64(tstate + u64::from(l.thread_id), thread_id);
        if let (Some(off), Some(n)) = (l.native_thread_id, native) {
            self.put_u32(tstate + u64::from(off), n);
        }
        let mut previous = 0;
        for &(code, offset) in frames.iter().rev() {
            let frame = self.alloc(0x100);
            self.put_u64(frame + u64::from(l.frame_previous), previous);
            if code == 0 {
                self.put(frame + u64::from(l.frame_owner.unwrap()), &[3]);
            } else {
                // Tag bits on the reference, as 3.14 may set them.
                self.put_u64(
                    frame + u64::from(l.frame_code),
                    code | (l.code_tag_bits & 1),
                );
                match l.position {
                    PositionKind::LastiBytes => {
                        self.put_u32(frame + u64::from(l.frame_position), offset as u32)
                    }
                    PositionKind::LastiUnits => {
                        self.put_u32(frame + u64::from(l.frame_position), (offset / 2) as u32)
                    }
                    PositionKind::InstrPtr => {
                        let start = code + u64::from(l.code_adaptive.unwrap());
                        self.put_u64(frame + u64::from(l.frame_position), start + offset)
                    }
                }
            }
            previous = frame;
        }
        match l.frame {
            FrameAnchor::Direct(off) => self.put_u64(tstate + u64::from(off), previous),
            FrameAnchor::ViaCFrame {
                cframe,
                current_frame,
            } => {
                let c = self.alloc(0x40);
                self.put_u64(c + u64::from(current_frame), previous);
                self.put_u64(tstate + u64::from(cframe), c);
            }
        }
        let head = self.interp + u64::from(l.threads_head);
        let mut old = [0u8; 8];
        self.read(head, &mut old).unwrap();
        self.put_u64(tstate + u64::from(l.thread_next), u64::from_le_bytes(old));
        self.put_u64(head, tstate);
        tstate
    }

    /// Makes `tstate` the GIL's holder.
    pub fn hold_gil(&mut self, tstate: u64) {
        match self.layout.gil {
            GilHolder::Runtime(off) => self.put_u64(self.runtime + u64::from(off), tstate),
            GilHolder::InterpPointer {
                gil,
                holder,
                locked,
            } => {
                let g = self.alloc(0x100);
                self.put_u64(self.interp + u64::from(gil), g);
                self.put_u32(g + u64::from(locked), 1);
                self.put_u64(g + u64::from(holder), tstate);
            }
            GilHolder::Interp { holder, locked } => {
                self.put_u32(self.interp + u64::from(locked), 1);
                self.put_u64(self.interp + u64::from(holder), tstate);
            }
        }
    }

    /// Forgets the interpreter, as a finalised runtime does.
    pub fn clear_interpreters(&mut self) {
        let head = self.runtime + u64::from(self.layout.interpreters_head);
        self.put_u64(head, 0);
    }
}

/// The runtime a reader is given for `p`.
pub fn runtime(p: &FakeProcess) -> Runtime {
    Runtime {
        address: p.runtime,
        layout: p.layout,
        code_type: p.code_type,
        str_type: p.str_type,
        bytes_type: p.bytes_type,
    }
}
