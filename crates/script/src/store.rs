//! Where globals live while a script runs, as the interpreter sees them.
//!
//! [`Store`] is implemented by pytap's engine over BPF maps (globals the
//! kernel probes use) and here by [`MemStore`] (globals only userspace
//! uses, and tests).

use std::collections::BTreeMap;

use crate::ir::{GlobalId, HistShape, Program, Ty};
use crate::value::{Stats, Value};

/// Entries an array holds unless declared otherwise (`global a[N]`).
pub const DEFAULT_ARRAY_SIZE: u32 = 65536;

/// Why a store operation failed (the interpreter adds where).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

/// Globals.
pub trait Store {
    /// The value of a scalar (`keys` empty) or array element; the zero
    /// value when absent (absent elements are not created).
    fn get(&mut self, g: GlobalId, keys: &[Value]) -> Result<Value, StoreError>;
    /// Sets a scalar or element.
    fn set(&mut self, g: GlobalId, keys: &[Value], value: Value) -> Result<(), StoreError>;
    /// Whether an element exists.
    fn exists(&mut self, g: GlobalId, keys: &[Value]) -> Result<bool, StoreError>;
    /// Deletes an element, or (`None`) the whole array or resets a scalar.
    fn delete(&mut self, g: GlobalId, keys: Option<&[Value]>) -> Result<(), StoreError>;
    /// `<<<`.
    fn aggregate(&mut self, g: GlobalId, keys: &[Value], value: i64) -> Result<(), StoreError>;
    /// Every element of an array, in no particular order.
    fn entries(&mut self, g: GlobalId) -> Result<Vec<(Vec<Value>, Value)>, StoreError>;
    /// Every element's value back to zero, keys kept (D's `clear()`); a
    /// scalar reset.
    fn zero_values(&mut self, g: GlobalId) -> Result<(), StoreError>;
}

enum Data {
    Scalar(Value),
    Array(BTreeMap<Vec<Value>, Value>),
}

struct Slot {
    data: Data,
    value: Ty,
    size: u32,
    hist: Option<HistShape>,
    name: String,
}

/// Globals in memory.
pub struct MemStore {
    slots: Vec<Slot>,
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore")
            .field("globals", &self.slots.len())
            .finish()
    }
}

impl MemStore {
    /// Every global of `program` at its initial value.
    pub fn new(program: &Program) -> MemStore {
        MemStore {
            slots: program
                .globals
                .iter()
                .map(|g| Slot {
                    data: if g.is_array() {
                        Data::Array(BTreeMap::new())
                    } else {
                        Data::Scalar(match &g.init {
                            Some(crate::ir::Const::Long(v)) => Value::Long(*v),
                            Some(crate::ir::Const::Str(s)) => Value::Str(s.clone()),
                            None => Value::zero(g.value),
                        })
                    },
                    value: g.value,
                    size: g.size.unwrap_or(DEFAULT_ARRAY_SIZE),
                    hist: g.hist,
                    name: g.name.clone(),
                })
                .collect(),
        }
    }

    fn slot(&mut self, g: GlobalId) -> &mut Slot {
        &mut self.slots[g]
    }
}

fn full(slot: &Slot) -> StoreError {
    StoreError(format!(
        "array `{}` is full ({} entries): declare it bigger, `global {}[N]`",
        slot.name, slot.size, slot.name
    ))
}

impl Store for MemStore {
    fn get(&mut self, g: GlobalId, keys: &[Value]) -> Result<Value, StoreError> {
        let slot = self.slot(g);
        Ok(match &slot.data {
            Data::Scalar(v) => v.clone(),
            Data::Array(m) => m
                .get(keys)
                .cloned()
                .unwrap_or_else(|| Value::zero(slot.value)),
        })
    }

    fn set(&mut self, g: GlobalId, keys: &[Value], value: Value) -> Result<(), StoreError> {
        let slot = self.slot(g);
        let size = slot.size as usize;
        let is_full =
            matches!(&slot.data, Data::Array(m) if m.len() >= size && !m.contains_key(keys));
        if is_full {
            return Err(full(slot));
        }
        match &mut slot.data {
            Data::Scalar(v) => *v = value,
            Data::Array(m) => {
                m.insert(keys.to_vec(), value);
            }
        }
        Ok(())
    }

    fn exists(&mut self, g: GlobalId, keys: &[Value]) -> Result<bool, StoreError> {
        Ok(match &self.slot(g).data {
            Data::Scalar(_) => true,
            Data::Array(m) => m.contains_key(keys),
        })
    }

    fn delete(&mut self, g: GlobalId, keys: Option<&[Value]>) -> Result<(), StoreError> {
        let slot = self.slot(g);
        let zero = Value::zero(slot.value);
        match (&mut slot.data, keys) {
            (Data::Scalar(v), _) => *v = zero,
            (Data::Array(m), None) => m.clear(),
            (Data::Array(m), Some(k)) => {
                m.remove(k);
            }
        }
        Ok(())
    }

    fn aggregate(&mut self, g: GlobalId, keys: &[Value], value: i64) -> Result<(), StoreError> {
        let hist = self.slot(g).hist;
        let mut current = match self.get(g, keys)? {
            Value::Stats(s) => s,
            _ => Stats::default(),
        };
        current.add(value, hist);
        self.set(g, keys, Value::Stats(current))
    }

    fn entries(&mut self, g: GlobalId) -> Result<Vec<(Vec<Value>, Value)>, StoreError> {
        Ok(match &self.slot(g).data {
            Data::Scalar(_) => Vec::new(),
            Data::Array(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        })
    }

    fn zero_values(&mut self, g: GlobalId) -> Result<(), StoreError> {
        let slot = self.slot(g);
        let zero = Value::zero(slot.value);
        match &mut slot.data {
            Data::Scalar(v) => *v = zero,
            Data::Array(m) => m.values_mut().for_each(|v| *v = zero.clone()),
        }
        Ok(())
    }
}
