//! `--filter` and `--within` patterns (`pytap flow`): a function glob,
//! optionally after a file glob, and what they match.

use anyhow::{Result, bail};
use glob::Pattern;

use crate::engine::codegen::within;
use crate::model::stack::FuncId;

/// `--filter` and `--within`: a function glob, optionally with a file glob
/// (`FILE:FUNC`). A file glob without `/` matches the file's base name
/// (`exc.py:middle`), one with `/` the whole path (`*/app/*.py:main`).
#[derive(Debug, Clone)]
pub struct FuncFilter {
    file: Option<Pattern>,
    file_is_base: bool,
    func: Pattern,
    text: String,
}

impl FuncFilter {
    /// Parses `FUNC` or `FILE:FUNC`; `option` names the flag in errors.
    pub fn parse(text: &str, option: &str) -> Result<FuncFilter> {
        let glob = |g: &str| Pattern::new(g).map_err(|e| anyhow::anyhow!("{option} '{text}': {e}"));
        match text.rsplit_once(':') {
            Some((file, func)) if !file.is_empty() => Ok(FuncFilter {
                file: Some(glob(file)?),
                file_is_base: !file.contains('/'),
                func: glob(if func.is_empty() { "*" } else { func })?,
                text: text.to_string(),
            }),
            _ if text.is_empty() => bail!("{option}: empty pattern"),
            _ => Ok(FuncFilter {
                file: None,
                file_is_base: false,
                func: glob(text.trim_start_matches(':'))?,
                text: text.to_string(),
            }),
        }
    }

    /// The filter as the user wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The function name when the function part is one exact name short
    /// enough for the kernel to compare ([`within::MAX_NAME`]). A file part
    /// is left to userspace: the kernel then keeps every function of that
    /// name, which is more than the filter needs, never less.
    pub fn literal_func(&self) -> Option<Vec<u8>> {
        let text = self.func.as_str();
        let literal = !text.contains(['*', '?', '[', ']'])
            && !text.is_empty()
            && text.len() <= within::MAX_NAME;
        literal.then(|| text.as_bytes().to_vec())
    }

    /// Whether a function matches.
    pub fn matches(&self, f: &FuncId) -> bool {
        if !self.func.matches(&f.funcname) {
            return false;
        }
        let Some(file) = &self.file else {
            return true;
        };
        if self.file_is_base {
            // A path the kernel kept the end of starts with `…`; its base
            // name is still whole.
            file.matches(f.filename.rsplit('/').next().unwrap_or(&f.filename))
        } else {
            file.matches(&f.filename)
        }
    }
}
