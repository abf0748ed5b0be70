//! The interpreter's arithmetic, comparisons and `foreach` order, as
//! SystemTap computes them on 64-bit longs and strings.

use crate::ast::{BinOp, CmpOp};
use crate::ir::Sort;
use crate::value::Value;

/// Integer arithmetic as SystemTap's 64-bit longs; `None` on division by 0.
pub fn arith(op: BinOp, x: i64, y: i64) -> Option<i64> {
    Some(match op {
        BinOp::Add => x.wrapping_add(y),
        BinOp::Sub => x.wrapping_sub(y),
        BinOp::Mul => x.wrapping_mul(y),
        BinOp::Div => {
            if y == 0 {
                return None;
            }
            x.wrapping_div(y)
        }
        BinOp::Mod => {
            if y == 0 {
                return None;
            }
            x.wrapping_rem(y)
        }
        BinOp::Shl => x.wrapping_shl(y as u32),
        BinOp::Shr => x.wrapping_shr(y as u32),
        BinOp::Ushr => ((x as u64).wrapping_shr(y as u32)) as i64,
        BinOp::And => x & y,
        BinOp::Or => x | y,
        BinOp::Xor => x ^ y,
    })
}

/// Whether `ord` satisfies `op`.
pub fn compare(op: CmpOp, ord: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match op {
        CmpOp::Eq => ord == Equal,
        CmpOp::Ne => ord != Equal,
        CmpOp::Lt => ord == Less,
        CmpOp::Le => ord != Greater,
        CmpOp::Gt => ord == Greater,
        CmpOp::Ge => ord != Less,
    }
}

/// Sorts `foreach` entries: by the sort column (ties by the keys, so the
/// order is always the same), or by the keys when unsorted.
pub fn sort_entries(entries: &mut [(Vec<Value>, Value)], sort: Option<Sort>) {
    let Some(sort) = sort else {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        return;
    };
    let key = |e: &(Vec<Value>, Value)| -> Value {
        if sort.column == 0 {
            match &e.1 {
                Value::Stats(s) => Value::Long(s.sort_key(sort.stat)),
                v => v.clone(),
            }
        } else {
            e.0.get(sort.column - 1).cloned().unwrap_or(Value::Long(0))
        }
    };
    entries.sort_by(|a, b| {
        let ord = key(a).cmp(&key(b));
        let ord = if sort.ascending { ord } else { ord.reverse() };
        ord.then_with(|| a.0.cmp(&b.0))
    });
}
