//! D's actions on whole aggregations, run in pytap: `printa` (printed
//! by [`crate::dtrace::aggprint`]), `clear`, `trunc`, `normalize`.

use super::{Interp, RunError, World, store_err};
use crate::dtrace::aggprint;
use crate::ir::{AggAction, GlobalId, Program};
use crate::source::Span;
use crate::value::{Stats, Value};

/// An action on an aggregation, its argument evaluated.
pub(super) struct AggCall<'a> {
    /// Which.
    pub action: &'a AggAction,
    /// The aggregation.
    pub agg: GlobalId,
    /// `trunc`'s count or `normalize`'s divisor.
    pub arg: Option<i64>,
}

impl Interp {
    pub(super) fn agg_action(
        &mut self,
        p: &Program,
        call: AggCall<'_>,
        w: &mut World<'_>,
        span: Span,
    ) -> Result<(), RunError> {
        let AggCall { action, agg, arg } = call;
        match action {
            AggAction::Printa(format) => {
                let entries = self.aggregation(p, agg, w, span)?;
                let normal = self.normal.get(&agg).copied().unwrap_or(1);
                // Without a format, dtrace starts with a newline.
                let mut out = if format.is_none() {
                    vec![b'\n']
                } else {
                    Vec::new()
                };
                aggprint::print(
                    &p.globals[agg],
                    entries,
                    normal,
                    format.as_deref(),
                    &mut out,
                )
                .map_err(|m| super::err(span, m))?;
                w.out.write(&out);
                self.printed.insert(agg);
            }
            AggAction::Clear => {
                // Values back to zero, keys kept (dtrace prints them, as 0;
                // a keyless one too, once it had a value).
                if !p.globals[agg].is_array() && !self.aggregation(p, agg, w, span)?.is_empty() {
                    self.cleared.insert(agg);
                }
                w.store.zero_values(agg).map_err(store_err(span))?;
            }
            AggAction::Trunc => {
                let keep = arg.unwrap_or(0);
                self.cleared.remove(&agg);
                if keep == 0 {
                    w.store.delete(agg, None).map_err(store_err(span))?;
                } else {
                    let mut entries = self.aggregation(p, agg, w, span)?;
                    aggprint::sort(&p.globals[agg], &mut entries);
                    // Positive: keep the highest values; negative: the lowest.
                    let n = entries.len();
                    let kept = keep.unsigned_abs().min(n as u64) as usize;
                    let dropped = if keep > 0 {
                        &entries[..n - kept]
                    } else {
                        &entries[kept..]
                    };
                    if p.globals[agg].is_array() {
                        for (keys, _) in dropped {
                            w.store.delete(agg, Some(keys)).map_err(store_err(span))?;
                        }
                    }
                }
            }
            AggAction::Normalize => {
                let n = arg.unwrap_or(1);
                if n <= 0 {
                    return Err(super::err(span, "normalize() needs a positive divisor"));
                }
                self.normal.insert(agg, n);
            }
            AggAction::Denormalize => {
                self.normal.remove(&agg);
            }
        }
        Ok(())
    }
}

impl Interp {
    /// Every entry of an aggregation (a scalar one has one, keyless, once
    /// given a value, and after `clear()`).
    pub fn aggregation(
        &self,
        p: &Program,
        agg: GlobalId,
        w: &mut World<'_>,
        span: Span,
    ) -> Result<Vec<(Vec<Value>, Stats)>, RunError> {
        let stats = |v: Value| match v {
            Value::Stats(s) => s,
            _ => Stats::default(),
        };
        if p.globals[agg].is_array() {
            Ok(w.store
                .entries(agg)
                .map_err(store_err(span))?
                .into_iter()
                .map(|(k, v)| (k, stats(v)))
                .collect())
        } else {
            let s = stats(w.store.get(agg, &[]).map_err(store_err(span))?);
            Ok(if s.count > 0 || self.cleared.contains(&agg) {
                vec![(Vec::new(), s)]
            } else {
                Vec::new()
            })
        }
    }
}
