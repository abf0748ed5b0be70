//! `src/cpython/layouts.txt` is what `scripts/layouts.py` prints from the
//! DWARF of pyenv's builds today, byte for byte: the stack layouts of
//! 3.8-3.12 are generated, never edited by hand.

use std::process::Command;

use crate::harness::{root, system_python};

#[test]
fn cpython_layouts_are_generated() {
    let gdb = Command::new("gdb")
        .args(["-batch", "-nx", "--version"])
        .output();
    assert!(
        gdb.is_ok_and(|o| o.status.success()),
        "prerequisite missing: gdb (apt-get install gdb; .ci/run installs it), \
         which scripts/layouts.py runs on pyenv's libpython builds"
    );
    let script = root().join("scripts/layouts.py");
    let out = Command::new(system_python())
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed (it needs pyenv's builds of 3.8-3.12 under $PYENV_ROOT, default ~/.pyenv):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = String::from_utf8(out.stdout).expect("layouts.py prints text");
    let committed = std::fs::read_to_string(root().join("src/cpython/layouts.txt")).unwrap();
    // Compared as strings (equal strings are equal bytes) so that a
    // difference shows as lines.
    assert_eq!(
        generated, committed,
        "src/cpython/layouts.txt is not what scripts/layouts.py generates: regenerate it \
         (scripts/layouts.py > src/cpython/layouts.txt), never edit it"
    );
}
