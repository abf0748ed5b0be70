//! Globals in BPF maps: keys assembled (numbers, string addresses, padded
//! string bytes), the live copy of a swapped global chosen by its epoch,
//! reads, writes, atomic adds, and new keys of address-keyed arrays
//! announced to pytap (statistics are [`super::stats`]).

use pytap_ebpf::{AluOp, Helper, JmpOp, Reg, Size};
use pytap_script::ast::BinOp;
use pytap_script::ir::*;

use super::lower::{Gen, Slot, unsupported};
use super::placement::{KernelGlobal, KeyPart, ValueLayout};
use super::strings::StrVal;
use super::{counter, ctl};
use crate::engine::abi::STR_CAP;
use crate::engine::codegen::CodegenError;

type R<T> = Result<T, CodegenError>;

/// `BPF_NOEXIST`.
pub(super) const NOEXIST: i32 = 1;
/// `-EEXIST`.
const EEXIST: i32 = -17;

/// Where an assembled key is.
#[derive(Debug, Clone, Copy)]
pub enum KeyAt {
    /// On the stack.
    Stack(i16),
    /// In the scratch area's key buffer.
    Scratch(u32),
}

/// A key part's value before assembly.
enum PartVal {
    Tgid,
    Long(i16),
    Addr(i16),
    Bytes(StrVal),
}

impl Gen<'_> {
    pub(super) fn kernel_global(&self, g: GlobalId) -> R<&KernelGlobal> {
        self.h.placement.globals[g]
            .as_ref()
            .ok_or_else(|| unsupported("a global the placement left in userspace"))
    }

    /// `r1 = ` the live map of global `g` (clobbers r0-r5).
    pub fn map_fd(&mut self, g: GlobalId) -> R<()> {
        let [first, second] =
            self.h.maps.globals[g].ok_or_else(|| unsupported("a global without maps"))?;
        let Some(slot) = self.kernel_global(g)?.swap_slot else {
            self.b.ld_map_fd(Reg::R1, first);
            return Ok(());
        };
        let (other, end) = (self.b.new_label(), self.b.new_label());
        super::lower::lookup_slot0(self.b, self.env, self.h.maps.control);
        self.b.mov64_imm(Reg::R1, 0);
        let null = self.b.new_label();
        self.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, null);
        self.b.ldx(
            Size::DW,
            Reg::R1,
            Reg::R0,
            (8 * (ctl::EPOCHS + slot)) as i16,
        );
        self.b.bind(null);
        self.b.jmp_imm(JmpOp::Jne, Reg::R1, 0, other);
        self.b.ld_map_fd(Reg::R1, first);
        self.b.ja(end);
        self.b.bind(other);
        self.b.ld_map_fd(Reg::R1, second);
        self.b.bind(end);
        Ok(())
    }

    /// `reg = &key`.
    pub fn key_ptr(&mut self, reg: Reg, at: KeyAt) -> R<()> {
        match at {
            KeyAt::Stack(off) => {
                self.b.mov64_reg(reg, Reg::FP).add64_imm(reg, off.into());
            }
            KeyAt::Scratch(off) => self.scratch_at(reg, off)?,
        }
        Ok(())
    }

    /// Evaluates `keys` and assembles global `g`'s key.
    pub fn key(&mut self, g: GlobalId, keys: &[Expr]) -> R<KeyAt> {
        let kg = self.kernel_global(g)?.clone();
        if kg.key.is_empty() {
            return Ok(KeyAt::Stack(self.env.slots.key.off));
        }
        let mut exprs = keys.iter();
        let mut parts = Vec::new();
        for part in &kg.key {
            parts.push(match part {
                KeyPart::Tgid => PartVal::Tgid,
                KeyPart::Long => PartVal::Long(
                    self.long_to_temp(exprs.next().ok_or_else(|| unsupported("a key"))?)?,
                ),
                KeyPart::Address => {
                    let e = exprs.next().ok_or_else(|| unsupported("a key"))?;
                    match self.string(e)? {
                        StrVal::Addr { slot, .. } => PartVal::Addr(slot),
                        _ => return Err(unsupported("an address key that is not a marker string")),
                    }
                }
                KeyPart::Bytes => {
                    PartVal::Bytes(self.string(exprs.next().ok_or_else(|| unsupported("a key"))?)?)
                }
                KeyPart::Stack => {
                    let key = exprs.next().ok_or_else(|| unsupported("a key"))?;
                    PartVal::Long(self.stack_to_temp(key)?)
                }
            });
        }
        let at = if kg.key.contains(&KeyPart::Bytes) {
            KeyAt::Scratch(self.layout.key)
        } else {
            KeyAt::Stack(self.b.alloc_stack(kg.key_size() as u16, 8)?.off)
        };
        for (i, part) in parts.iter().enumerate() {
            let off = kg.key_offset(i);
            match part {
                PartVal::Tgid => {
                    self.firing_pid_tgid();
                    self.b.alu64_imm(AluOp::Rsh, Reg::R0, 32);
                    self.store_key_word(at, off)?;
                }
                PartVal::Long(t) | PartVal::Addr(t) => {
                    self.b.ldx(Size::DW, Reg::R0, Reg::FP, *t);
                    self.store_key_word(at, off)?;
                }
                PartVal::Bytes(v) => {
                    let KeyAt::Scratch(base) = at else {
                        return Err(unsupported("string bytes in a stack key"));
                    };
                    self.padded(v, base + off)?;
                }
            }
        }
        Ok(at)
    }

    /// `*(u64 *)(key + off) = r0`.
    fn store_key_word(&mut self, at: KeyAt, off: u32) -> R<()> {
        match at {
            KeyAt::Stack(base) => {
                self.b.stx(Size::DW, Reg::FP, base + off as i16, Reg::R0);
            }
            KeyAt::Scratch(base) => {
                self.scratch_at(Reg::R1, base + off)?;
                self.b.stx(Size::DW, Reg::R1, 0, Reg::R0);
            }
        }
        Ok(())
    }

    /// `r0 = lookup(g, key)` (null when absent).
    pub(super) fn lookup(&mut self, g: GlobalId, at: KeyAt) -> R<()> {
        self.map_fd(g)?;
        self.key_ptr(Reg::R2, at)?;
        self.b.call(Helper::MapLookupElem);
        Ok(())
    }

    /// `r0 = &g[keys]` (null when absent), through the firing's kept
    /// address when `g[keys]` is a kept thread-keyed element
    /// ([`super::cache`]); the key is only built when it is looked up.
    fn lookup_keys(&mut self, g: GlobalId, keys: &[Expr]) -> R<()> {
        let Some(slot) = self.cache.slot(g, keys) else {
            let at = self.key(g, keys)?;
            return self.lookup(g, at);
        };
        let known = self.b.new_label();
        self.b.ldx(Size::DW, Reg::R0, Reg::FP, slot);
        self.b.jmp_imm(JmpOp::Jne, Reg::R0, 0, known);
        let at = self.key(g, keys)?;
        self.lookup(g, at)?;
        self.b.stx(Size::DW, Reg::FP, slot, Reg::R0);
        self.b.bind(known);
        Ok(())
    }

    /// After an update or delete of `g`: its kept address, if any, is
    /// forgotten (the element may have moved or gone).
    fn forget(&mut self, g: GlobalId) {
        if let Some(slot) = self.cache.of(g) {
            self.b.st_imm(Size::DW, Reg::FP, slot, 0);
        }
    }

    /// `r0 = g[keys]` for a number (0 when absent).
    pub fn global_read_long(&mut self, g: GlobalId, keys: &[Expr]) -> R<()> {
        self.lookup_keys(g, keys)?;
        let end = self.b.new_label();
        self.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, end);
        self.b.ldx(Size::DW, Reg::R0, Reg::R0, 0);
        self.b.bind(end);
        Ok(())
    }

    /// `g[keys]` for a string, copied to a buffer ("" when absent).
    pub fn global_read_string(&mut self, g: GlobalId, keys: &[Expr]) -> R<StrVal> {
        let off = self.alloc_string()?;
        self.lookup_keys(g, keys)?;
        let (absent, end) = (self.b.new_label(), self.b.new_label());
        self.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, absent);
        self.b.mov64_reg(Reg::R3, Reg::R0);
        self.scratch_at(Reg::R1, off)?;
        self.b.mov64_imm(Reg::R2, STR_CAP as i32);
        self.b.call(Helper::ProbeReadKernelStr);
        self.b.ja(end);
        self.b.bind(absent);
        self.store_empty(off);
        self.b.bind(end);
        Ok(StrVal::Bytes(off))
    }

    /// `r0 = [keys] in g`.
    pub fn global_exists(&mut self, g: GlobalId, keys: &[Expr]) -> R<()> {
        self.lookup_keys(g, keys)?;
        let end = self.b.new_label();
        self.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, end);
        self.b.mov64_imm(Reg::R0, 1);
        self.b.bind(end);
        Ok(())
    }

    /// `delete g` of a scalar: back to 0 or "".
    pub fn global_reset(&mut self, g: GlobalId) -> R<()> {
        let kg = self.kernel_global(g)?.clone();
        match kg.value {
            ValueLayout::Long => {
                let zero = self.temp()?;
                self.b.st_imm(Size::DW, Reg::FP, zero, 0);
                self.update(
                    g,
                    KeyAt::Stack(self.env.slots.key.off),
                    Value::Stack(zero),
                    0,
                )
            }
            ValueLayout::Str => {
                let value = self.layout.value;
                self.store_empty(value);
                self.update(
                    g,
                    KeyAt::Stack(self.env.slots.key.off),
                    Value::Scratch(value),
                    0,
                )
            }
            ValueLayout::Stats { .. } => Err(unsupported("deleting statistics")),
        }
    }

    /// `delete g[keys]`.
    pub fn global_delete(&mut self, g: GlobalId, keys: &[Expr]) -> R<()> {
        let at = self.key(g, keys)?;
        self.map_fd(g)?;
        self.key_ptr(Reg::R2, at)?;
        self.b.call(Helper::MapDeleteElem);
        self.forget(g);
        Ok(())
    }

    /// `map_update(g, key, value, flags)`; a failure other than `EEXIST`
    /// (with `BPF_NOEXIST`) counts a dropped update. Leaves the helper's
    /// result in r0.
    pub(super) fn update(&mut self, g: GlobalId, at: KeyAt, value: Value, flags: i32) -> R<()> {
        self.map_fd(g)?;
        self.key_ptr(Reg::R2, at)?;
        match value {
            Value::Stack(off) => {
                self.b
                    .mov64_reg(Reg::R3, Reg::FP)
                    .add64_imm(Reg::R3, off.into());
            }
            Value::Scratch(off) => self.scratch_at(Reg::R3, off)?,
        }
        self.b.mov64_imm(Reg::R4, flags);
        self.b.call(Helper::MapUpdateElem);
        self.forget(g);
        let ok = self.b.new_label();
        self.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, ok);
        if flags == NOEXIST {
            self.b.jmp_imm(JmpOp::Jeq, Reg::R0, EEXIST, ok);
        }
        let t = self.temp()?;
        self.b.stx(Size::DW, Reg::FP, t, Reg::R0);
        self.count(counter::FIRST_GLOBAL + g as u32);
        self.b.ldx(Size::DW, Reg::R0, Reg::FP, t);
        self.b.bind(ok);
        Ok(())
    }

    /// An assignment; with `want`, its new value (numbers) is left in r0.
    pub fn assign(&mut self, lv: &LValue, op: AssignOp, v: &Expr, want: bool) -> R<()> {
        if op == AssignOp::Concat {
            return Err(unsupported("`.=`"));
        }
        let (g, keys) = match lv {
            LValue::Local(l) => {
                let slot = self.locals[*l];
                return match (op, slot) {
                    (AssignOp::Set, slot) => self.store(slot, v),
                    (AssignOp::Compound(bin), Slot::Long(off)) => {
                        self.long(v)?;
                        self.b.mov64_reg(Reg::R1, Reg::R0);
                        self.b.ldx(Size::DW, Reg::R0, Reg::FP, off);
                        self.arith(bin, v.id)?;
                        self.b.stx(Size::DW, Reg::FP, off, Reg::R0);
                        Ok(())
                    }
                    _ => Err(unsupported("this assignment")),
                };
            }
            LValue::Global(g) => (*g, &[][..]),
            LValue::Index(g, keys) => (*g, keys.as_slice()),
        };
        let kg = self.kernel_global(g)?.clone();
        match (kg.value, op) {
            (ValueLayout::Str, AssignOp::Set) => {
                let value = self.string(v)?;
                let at = self.key(g, keys)?;
                let buf = self.layout.value;
                self.materialize(&value, buf)?;
                self.update(g, at, Value::Scratch(buf), 0)
            }
            (ValueLayout::Long, AssignOp::Set) => {
                let t = self.long_to_temp(v)?;
                let at = self.key(g, keys)?;
                self.update(g, at, Value::Stack(t), 0)?;
                if want {
                    self.b.ldx(Size::DW, Reg::R0, Reg::FP, t);
                }
                Ok(())
            }
            (ValueLayout::Long, AssignOp::Compound(bin @ (BinOp::Add | BinOp::Sub))) => {
                let t = self.long_to_temp(v)?;
                if bin == BinOp::Sub {
                    self.b.neg64(Reg::R0);
                    self.b.stx(Size::DW, Reg::FP, t, Reg::R0);
                }
                self.add(g, keys, t, false, want)
            }
            (ValueLayout::Long, AssignOp::Compound(bin)) => {
                let t = self.long_to_temp(v)?;
                let at = self.key(g, keys)?;
                let old = self.temp()?;
                self.lookup(g, at)?;
                let absent = self.b.new_label();
                self.b.st_imm(Size::DW, Reg::FP, old, 0);
                self.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, absent);
                self.b.ldx(Size::DW, Reg::R1, Reg::R0, 0);
                self.b.stx(Size::DW, Reg::FP, old, Reg::R1);
                self.b.bind(absent);
                self.b.ldx(Size::DW, Reg::R0, Reg::FP, old);
                self.b.ldx(Size::DW, Reg::R1, Reg::FP, t);
                self.arith(bin, v.id)?;
                self.b.stx(Size::DW, Reg::FP, t, Reg::R0);
                self.update(g, at, Value::Stack(t), 0)?;
                if want {
                    self.b.ldx(Size::DW, Reg::R0, Reg::FP, t);
                }
                Ok(())
            }
            _ => Err(unsupported("this assignment to a global")),
        }
    }

    /// `++`/`--`; with `want`, the value before (`post`) or after in r0.
    pub fn crement(&mut self, lv: &LValue, delta: i64, post: bool, want: bool) -> R<()> {
        let (g, keys) = match lv {
            LValue::Local(l) => {
                let Slot::Long(off) = self.locals[*l] else {
                    return Err(unsupported("++ on a string"));
                };
                self.b.ldx(Size::DW, Reg::R0, Reg::FP, off);
                self.b.mov64_reg(Reg::R1, Reg::R0);
                self.b.add64_imm(Reg::R1, delta as i32);
                self.b.stx(Size::DW, Reg::FP, off, Reg::R1);
                if !post {
                    self.b.mov64_reg(Reg::R0, Reg::R1);
                }
                return Ok(());
            }
            LValue::Global(g) => (*g, &[][..]),
            LValue::Index(g, keys) => (*g, keys.as_slice()),
        };
        let t = self.temp()?;
        self.load_const(delta);
        self.b.stx(Size::DW, Reg::FP, t, Reg::R0);
        self.add(g, keys, t, post, want)
    }

    /// `g[keys] += *t` atomically (inserting `*t` for a new key, which an
    /// address-keyed array announces); with `want`, r0 is the value
    /// before (`old`) or after.
    fn add(&mut self, g: GlobalId, keys: &[Expr], t: i16, old: bool, want: bool) -> R<()> {
        let address_keyed = self.kernel_global(g)?.address_keyed;
        let (found, inserted, done) = (self.b.new_label(), self.b.new_label(), self.b.new_label());
        let result = self.temp()?;
        self.b.st_imm(Size::DW, Reg::FP, result, 0);
        let kept = self.cache.slot(g, keys);
        if let Some(slot) = kept {
            self.b.ldx(Size::DW, Reg::R0, Reg::FP, slot);
            self.b.jmp_imm(JmpOp::Jne, Reg::R0, 0, found);
        }
        let at = self.key(g, keys)?;
        self.lookup(g, at)?;
        if let Some(slot) = kept {
            self.b.stx(Size::DW, Reg::FP, slot, Reg::R0);
        }
        self.b.jmp_imm(JmpOp::Jne, Reg::R0, 0, found);
        self.update(g, at, Value::Stack(t), NOEXIST)?;
        self.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, inserted);
        self.b.jmp_imm(JmpOp::Jne, Reg::R0, EEXIST, done);
        self.b
            .comment("another CPU inserted it first: add to theirs");
        self.lookup(g, at)?;
        self.b.jmp_imm(JmpOp::Jeq, Reg::R0, 0, done);
        self.b.bind(found);
        self.b.ldx(Size::DW, Reg::R1, Reg::FP, t);
        if want {
            self.b.atomic_fetch_add(Size::DW, Reg::R0, 0, Reg::R1);
            if !old {
                self.b.ldx(Size::DW, Reg::R2, Reg::FP, t);
                self.b.alu64_reg(AluOp::Add, Reg::R1, Reg::R2);
            }
            self.b.stx(Size::DW, Reg::FP, result, Reg::R1);
        } else {
            self.b.atomic_add(Size::DW, Reg::R0, 0, Reg::R1);
        }
        self.b.ja(done);
        self.b.bind(inserted);
        if want && !old {
            self.b.ldx(Size::DW, Reg::R1, Reg::FP, t);
            self.b.stx(Size::DW, Reg::FP, result, Reg::R1);
        }
        if address_keyed {
            super::output::emit_keydef(self, g, at)?;
        }
        self.b.bind(done);
        if want {
            self.b.ldx(Size::DW, Reg::R0, Reg::FP, result);
        }
        Ok(())
    }
}

/// Where an update's value is.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value {
    Stack(i16),
    Scratch(u32),
}
