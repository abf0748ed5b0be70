//! The print functions at run time: a histogram drawn from its
//! statistic, or the arguments formatted (`printf`) or joined (`print`,
//! `printd`, …); the `sprint` forms give the text as their value.

use super::{Interp, Overrides, RunError, World};
use crate::ast::PrintKind;
use crate::format::Arg;
use crate::ir::*;
use crate::source::Span;
use crate::value::Value;

impl Interp {
    pub(super) fn print(
        &mut self,
        p: &Program,
        print: &Print,
        frame: &mut Vec<Value>,
        w: &mut World<'_>,
        span: Span,
    ) -> Result<Value, RunError> {
        let mut out = std::mem::take(&mut self.print_buf);
        out.clear();
        // What `print` prints (its newline included).
        let result = match &print.hist {
            Some(h) => self
                .hist_counts(p, h, frame, w, span)
                .map(|counts| crate::hist::draw_histogram(h.shape, &counts, &mut out)),
            None => self
                .print_values(p, print, frame, w)
                .map(|values| render(&self.overrides, print, &values, &mut out)),
        };
        debug_assert!(print.kind.is_sprint() || !matches!(print.kind, PrintKind::Sprintf));
        if result.is_ok() && !print.kind.is_sprint() {
            w.out.write(&out);
        }
        let value = match result {
            Ok(()) if print.kind.is_sprint() => Ok(Value::Str(out.clone())),
            Ok(()) => Ok(Value::Long(0)),
            Err(e) => Err(e),
        };
        self.print_buf = out;
        value
    }

    /// A histogram's bucket counts (all 0 when nothing was added).
    fn hist_counts(
        &mut self,
        p: &Program,
        h: &HistPrint,
        frame: &mut Vec<Value>,
        w: &mut World<'_>,
        span: Span,
    ) -> Result<Vec<u64>, RunError> {
        let (v, _) = self.read(p, &h.stat, frame, w, span)?;
        Ok(match v {
            Value::Stats(s) if !s.buckets.is_empty() => s.buckets,
            _ => vec![0; h.shape.buckets()],
        })
    }

    /// The print's arguments evaluated, except those a kernel probe sent:
    /// they are read where they are kept (`overrides`), not copied, as a
    /// printf of marker strings runs for every record.
    fn print_values(
        &mut self,
        p: &Program,
        print: &Print,
        frame: &mut Vec<Value>,
        w: &mut World<'_>,
    ) -> Result<Vec<Option<Value>>, RunError> {
        let mut values = Vec::with_capacity(print.args.len());
        for a in &print.args {
            values.push(match self.overrides.get(a.id) {
                Some(_) => None,
                None => Some(self.eval(p, a, frame, w)?),
            });
        }
        Ok(values)
    }
}

/// Appends the print's arguments, formatted or joined, and its newline.
fn render(overrides: &Overrides, print: &Print, values: &[Option<Value>], out: &mut Vec<u8>) {
    let value = |(a, v): (&Expr, _)| given_or(overrides, a, v);
    match &print.format {
        Some(f) => {
            let args: Vec<Arg<'_>> = print
                .args
                .iter()
                .zip(values)
                .map(|av| value(av).map_or(Arg::Long(0), Value::arg))
                .collect();
            f.render(&args, out);
        }
        None => {
            let delim = print.delimiter.as_deref().unwrap_or(b"");
            for (i, av) in print.args.iter().zip(values).enumerate() {
                if i > 0 {
                    out.extend_from_slice(delim);
                }
                match value(av).unwrap_or(&Value::Long(0)) {
                    Value::Long(n) => out.extend_from_slice(n.to_string().as_bytes()),
                    Value::Str(s) => out.extend_from_slice(s),
                    Value::Stats(_) => {}
                }
            }
        }
    }
    if print.kind.has_newline() {
        out.push(b'\n');
    }
}

/// An argument's value: the one evaluated, else the one given for it.
fn given_or<'v>(overrides: &'v Overrides, a: &Expr, v: &'v Option<Value>) -> Option<&'v Value> {
    v.as_ref().or_else(|| overrides.get(a.id))
}
