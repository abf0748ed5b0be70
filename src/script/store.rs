//! A script's globals as the interpreter sees them: the ones the kernel
//! probes use are read and written in their BPF maps (numbers, strings,
//! per-CPU statistics summed), the others live in memory.
//!
//! An address-keyed array (see the placement) is read through the key
//! definitions the kernel sent: its raw keys (a pid and string addresses)
//! become the strings they named, and keys that name the same strings are
//! added up, as SystemTap would have counted them under one key. Marker
//! probes that run in pytap (on the in-process capture's events) cannot
//! make its keys: what they add is kept in memory, under the strings, and
//! added to the kernel's part when the array is read.

use std::collections::HashMap;

use pytap_script::ir::{GlobalId, Program};
use pytap_script::store::{MemStore, Store, StoreError};
use pytap_script::value::{Stats, Value};
use pytap_sys::bpf::Map;

use crate::engine::abi::STR_CAP;
use crate::engine::codegen::script::names;
use crate::engine::codegen::script::placement::{KernelGlobal, KeyPart, Placement, ValueLayout};
use crate::engine::session::Session;

/// Decoded keys of address-keyed arrays, by raw key bytes.
pub type KeyNames = HashMap<(GlobalId, Vec<u8>), Vec<Value>>;

/// The globals of a running script.
pub struct ScriptStore<'a> {
    /// Globals only userspace touches.
    pub mem: &'a mut MemStore,
    /// The session whose maps hold the kernel's globals (none before attach).
    pub session: Option<&'a Session>,
    /// The program.
    pub program: &'a Program,
    /// Where each global is.
    pub placement: &'a Placement,
    /// Address-keyed arrays' keys.
    pub keys: &'a KeyNames,
    /// The live copy of each swap slot (0 or 1).
    pub epochs: &'a [u8],
    /// Swapped globals read from their old copy (during the timer that swapped them).
    pub old: &'a [GlobalId],
    /// Keys the kernel sent no definition for (lost records), counted.
    pub undecoded: &'a mut u64,
    /// The stacks the probes walked (keys that are stacks print them).
    pub stacks: &'a crate::script::stacks::Stacks,
    /// Merged entries of address-keyed arrays read during this body.
    pub cache: HashMap<GlobalId, Vec<(Vec<Value>, Value)>>,
}

impl std::fmt::Debug for ScriptStore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptStore").finish_non_exhaustive()
    }
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

impl<'a> ScriptStore<'a> {
    /// The kernel global `g`'s layout and live (or old) map.
    fn kernel(&self, g: GlobalId) -> Option<(&'a KernelGlobal, &'a Map)> {
        let kg = self.placement.globals.get(g)?.as_ref()?;
        let session = self.session?;
        let copy = match kg.swap_slot {
            Some(slot) => {
                let live = usize::from(self.epochs.get(slot).copied().unwrap_or(0));
                if self.old.contains(&g) {
                    1 - live
                } else {
                    live
                }
            }
            None => 0,
        };
        Some((kg, session.map_named(&names::global(g, copy))?))
    }

    fn encode_key(kg: &KernelGlobal, keys: &[Value]) -> Result<Vec<u8>, StoreError> {
        if kg.key.is_empty() {
            return Ok(0u32.to_le_bytes().to_vec());
        }
        let mut out = Vec::with_capacity(kg.key_size() as usize);
        let mut values = keys.iter();
        for part in &kg.key {
            match part {
                KeyPart::Long => {
                    out.extend_from_slice(&values.next().map_or(0, Value::long).to_le_bytes())
                }
                KeyPart::Bytes => {
                    let s = values.next().map_or(&b""[..], Value::bytes);
                    let s = &s[..s.len().min(STR_CAP - 1)];
                    out.extend_from_slice(s);
                    out.resize(out.len() + STR_CAP - s.len(), 0);
                }
                KeyPart::Tgid | KeyPart::Address | KeyPart::Stack => {
                    return Err(StoreError(
                        "an array keyed by marker strings or stacks is written only by its probes"
                            .into(),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn decode_key(&self, g: GlobalId, kg: &KernelGlobal, raw: &[u8]) -> Option<Vec<Value>> {
        if kg.address_keyed {
            return self.keys.get(&(g, raw.to_vec())).cloned();
        }
        let mut out = Vec::new();
        let mut at = 0;
        for part in &kg.key {
            let size = part.size() as usize;
            let bytes = raw.get(at..at + size)?;
            out.push(match part {
                KeyPart::Long => Value::Long(i64::from_le_bytes(bytes.try_into().ok()?)),
                KeyPart::Bytes => Value::Str(
                    bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())].to_vec(),
                ),
                KeyPart::Stack => Value::Str(
                    self.stacks
                        .text(u64::from_le_bytes(bytes.try_into().ok()?), 0),
                ),
                KeyPart::Tgid | KeyPart::Address => return None,
            });
            at += size;
        }
        Some(out)
    }

    fn decode_value(kg: &KernelGlobal, map: &Map, raw: &[u8]) -> Value {
        match kg.value {
            ValueLayout::Long => Value::Long(
                raw.get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, i64::from_le_bytes),
            ),
            ValueLayout::Str => {
                let b = &raw[..raw.len().min(STR_CAP)];
                Value::Str(b[..b.iter().position(|&c| c == 0).unwrap_or(b.len())].to_vec())
            }
            ValueLayout::Stats { shape, squares } => {
                let stride = (map.value_size() as usize).div_ceil(8) * 8;
                let mut total = Stats::default();
                for cpu in raw.chunks(stride) {
                    let word = |i: usize| {
                        cpu.get(8 * i..8 * i + 8)
                            .and_then(|b| b.try_into().ok())
                            .map_or(0, i64::from_le_bytes)
                    };
                    let buckets = shape.map_or(0, |s| s.buckets());
                    let part = Stats {
                        count: word(0),
                        sum: word(1),
                        min: word(2),
                        max: word(3),
                        buckets: (0..buckets).map(|b| word(4 + b) as u64).collect(),
                        squares: if squares {
                            u128::from(word(4 + buckets) as u64)
                                | u128::from(word(5 + buckets) as u64) << 64
                        } else {
                            0
                        },
                    };
                    total.merge(&part);
                }
                Value::Stats(total)
            }
        }
    }

    fn encode_value(kg: &KernelGlobal, map: &Map, v: &Value) -> Vec<u8> {
        let mut out = vec![0u8; map.value_buffer_len()];
        match (kg.value, v) {
            (ValueLayout::Long, v) => out[..8].copy_from_slice(&v.long().to_le_bytes()),
            (ValueLayout::Str, v) => {
                let s = v.bytes();
                let n = s.len().min(STR_CAP - 1);
                out[..n].copy_from_slice(&s[..n]);
            }
            (ValueLayout::Stats { shape, squares }, Value::Stats(s)) => {
                // All of it on CPU 0.
                for (i, w) in [s.count, s.sum, s.min, s.max].into_iter().enumerate() {
                    out[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
                }
                for (i, b) in s.buckets.iter().enumerate() {
                    if let Some(slot) = out.get_mut(32 + 8 * i..40 + 8 * i) {
                        slot.copy_from_slice(&b.to_le_bytes());
                    }
                }
                if squares {
                    let at = ValueLayout::squares_offset(shape) as usize;
                    if let Some(slot) = out.get_mut(at..at + 16) {
                        slot.copy_from_slice(&s.squares.to_le_bytes());
                    }
                }
            }
            (ValueLayout::Stats { .. }, _) => {}
        }
        out
    }

    fn lookup(kg: &KernelGlobal, map: &Map, key: &[u8]) -> Result<Option<Value>, StoreError> {
        let mut buf = vec![0u8; map.value_buffer_len()];
        Ok(map
            .lookup(key, &mut buf)
            .map_err(err)?
            .then(|| Self::decode_value(kg, map, &buf)))
    }

    /// Every raw key of a map.
    fn raw_keys(map: &Map) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut keys = Vec::new();
        let mut next = vec![0u8; map.key_size() as usize];
        let mut prev: Option<Vec<u8>> = None;
        while map.next_key(prev.as_deref(), &mut next).map_err(err)? {
            keys.push(next.clone());
            prev = Some(next.clone());
            if keys.len() > map.max_entries() as usize {
                break;
            }
        }
        Ok(keys)
    }

    /// Whether `g`'s raw keys are not what the script sees: an
    /// address-keyed array, or one keyed by stacks (ids pytap names).
    /// Such an array is read whole, its keys decoded, and what pytap's
    /// own bodies add to it is kept beside the kernel's part.
    fn address_keyed(&self, g: GlobalId) -> bool {
        self.placement
            .globals
            .get(g)
            .and_then(|k| k.as_ref())
            .is_some_and(|k| k.address_keyed || k.key.contains(&KeyPart::Stack))
    }

    /// Decoded entries, keys naming the same strings merged, with what
    /// pytap added to an address-keyed array (cached for those until the
    /// body changes them).
    fn kernel_entries(&mut self, g: GlobalId) -> Result<Vec<(Vec<Value>, Value)>, StoreError> {
        if let Some(cached) = self.cache.get(&g) {
            return Ok(cached.clone());
        }
        let mut merged = self.kernel_part(g)?;
        if self.address_keyed(g) {
            for (keys, value) in self.mem.entries(g)? {
                merged.add(keys, value);
            }
            self.cache.insert(g, merged.entries.clone());
        }
        Ok(merged.entries)
    }

    /// The entries of `g`'s map, decoded, keys naming the same strings merged.
    fn kernel_part(&mut self, g: GlobalId) -> Result<Merged, StoreError> {
        let mut merged = Merged::default();
        let Some((kg, map)) = self.kernel(g) else {
            return Ok(merged);
        };
        for raw in Self::raw_keys(map)? {
            let Some(value) = Self::lookup(kg, map, &raw)? else {
                continue;
            };
            let Some(keys) = self.decode_key(g, kg, &raw) else {
                *self.undecoded += 1;
                continue;
            };
            merged.add(keys, value);
        }
        Ok(merged)
    }
}

/// Entries whose equal keys are added up, in first-seen order.
#[derive(Default)]
struct Merged {
    entries: Vec<(Vec<Value>, Value)>,
    index: HashMap<Vec<Value>, usize>,
}

impl Merged {
    fn add(&mut self, keys: Vec<Value>, value: Value) {
        match self.index.get(&keys) {
            Some(&i) => merge(&mut self.entries[i].1, value),
            None => {
                self.index.insert(keys.clone(), self.entries.len());
                self.entries.push((keys, value));
            }
        }
    }
}

/// Adds `v` into `into` (numbers and statistics; strings keep the first).
fn merge(into: &mut Value, v: Value) {
    match (into, v) {
        (Value::Long(a), Value::Long(b)) => *a = a.wrapping_add(b),
        (Value::Stats(a), Value::Stats(b)) => a.merge(&b),
        _ => {}
    }
}

impl Store for ScriptStore<'_> {
    fn get(&mut self, g: GlobalId, keys: &[Value]) -> Result<Value, StoreError> {
        if self.address_keyed(g) {
            let found = self.kernel_entries(g)?.into_iter().find(|(k, _)| k == keys);
            return Ok(found.map_or_else(|| Value::zero(self.program.globals[g].value), |(_, v)| v));
        }
        let Some((kg, map)) = self.kernel(g) else {
            if self.placement.globals[g].is_some() {
                return Ok(Value::zero(self.program.globals[g].value));
            }
            return self.mem.get(g, keys);
        };
        let key = Self::encode_key(kg, keys)?;
        Ok(Self::lookup(kg, map, &key)?
            .unwrap_or_else(|| Value::zero(self.program.globals[g].value)))
    }

    fn set(&mut self, g: GlobalId, keys: &[Value], value: Value) -> Result<(), StoreError> {
        if self.address_keyed(g) {
            // Only probes run in pytap write it here, adding (`+=`, `++`)
            // to what they read just before: pytap keeps what they make it
            // beyond the kernel's part as that read saw it (the cached
            // entries), so the kernel's own adds since are kept too.
            let total = self
                .kernel_entries(g)?
                .into_iter()
                .find(|(k, _)| k == keys)
                .map(|(_, v)| v);
            self.cache.remove(&g);
            let mine = match (&value, total) {
                (Value::Long(v), Some(Value::Long(t))) => {
                    let before = self.mem.get(g, keys)?.long();
                    Value::Long(v.wrapping_sub(t).wrapping_add(before))
                }
                _ => value,
            };
            return self.mem.set(g, keys, mine);
        }
        self.cache.remove(&g);
        let Some((kg, map)) = self.kernel(g) else {
            return self.mem.set(g, keys, value);
        };
        let key = Self::encode_key(kg, keys)?;
        let bytes = Self::encode_value(kg, map, &value);
        map.update(&key, &bytes, 0).map_err(|e| {
            if e.errno() == Some(libc_e2big()) {
                StoreError(format!(
                    "array `{}` is full ({} entries): declare it bigger, `global {}[N]`",
                    self.program.globals[g].name, kg.max_entries, self.program.globals[g].name
                ))
            } else {
                err(e)
            }
        })
    }

    fn exists(&mut self, g: GlobalId, keys: &[Value]) -> Result<bool, StoreError> {
        if self.address_keyed(g) {
            return Ok(self.kernel_entries(g)?.iter().any(|(k, _)| k == keys));
        }
        let Some((kg, map)) = self.kernel(g) else {
            return self.mem.exists(g, keys);
        };
        let key = Self::encode_key(kg, keys)?;
        Ok(Self::lookup(kg, map, &key)?.is_some())
    }

    fn delete(&mut self, g: GlobalId, keys: Option<&[Value]>) -> Result<(), StoreError> {
        self.cache.remove(&g);
        if self.address_keyed(g) {
            self.mem.delete(g, keys)?;
        }
        let Some((kg, map)) = self.kernel(g) else {
            return self.mem.delete(g, keys);
        };
        if kg.key.is_empty() {
            let zero = Value::zero(self.program.globals[g].value);
            let bytes = Self::encode_value(kg, map, &zero);
            let key = 0u32.to_le_bytes();
            if matches!(kg.value, ValueLayout::Stats { .. }) {
                let bytes = vec![0u8; map.value_buffer_len()];
                return map.update(&key, &bytes, 0).map_err(err);
            }
            return map.update(&key, &bytes, 0).map_err(err);
        }
        match keys {
            None => {
                for raw in Self::raw_keys(map)? {
                    map.delete(&raw).map_err(err)?;
                }
            }
            Some(keys) if kg.address_keyed || kg.key.contains(&KeyPart::Stack) => {
                for raw in Self::raw_keys(map)? {
                    if self.decode_key(g, kg, &raw).as_deref() == Some(keys) {
                        map.delete(&raw).map_err(err)?;
                    }
                }
            }
            Some(keys) => {
                map.delete(&Self::encode_key(kg, keys)?).map_err(err)?;
            }
        }
        Ok(())
    }

    fn zero_values(&mut self, g: GlobalId) -> Result<(), StoreError> {
        self.cache.remove(&g);
        if self.address_keyed(g) {
            self.mem.zero_values(g)?;
        }
        let Some((kg, map)) = self.kernel(g) else {
            return self.mem.zero_values(g);
        };
        if kg.key.is_empty() {
            return self.delete(g, None);
        }
        // Every per-CPU part zero, under the kernel's own keys (an address-
        // keyed array's keys are addresses pytap cannot make).
        let zero = vec![0u8; map.value_buffer_len()];
        for raw in Self::raw_keys(map)? {
            map.update(&raw, &zero, 0).map_err(err)?;
        }
        Ok(())
    }

    fn aggregate(&mut self, g: GlobalId, keys: &[Value], value: i64) -> Result<(), StoreError> {
        if self.address_keyed(g) {
            // Probes run in pytap: their part, beside the kernel's.
            self.cache.remove(&g);
            return self.mem.aggregate(g, keys, value);
        }
        if self.kernel(g).is_none() {
            return self.mem.aggregate(g, keys, value);
        }
        let mut current = match self.get(g, keys)? {
            Value::Stats(s) => s,
            _ => Stats::default(),
        };
        current.add(value, self.program.globals[g].hist);
        self.set(g, keys, Value::Stats(current))
    }

    fn entries(&mut self, g: GlobalId) -> Result<Vec<(Vec<Value>, Value)>, StoreError> {
        if self.address_keyed(g) {
            return self.kernel_entries(g);
        }
        if self.kernel(g).is_none() {
            if self.placement.globals[g].is_some() {
                return Ok(Vec::new());
            }
            return self.mem.entries(g);
        }
        self.kernel_entries(g)
    }
}

/// `E2BIG`: a full hash map.
fn libc_e2big() -> i32 {
    7
}
