//! Whole-file fuzzing: any bytes handed to pytap as an ELF file must give a
//! value or an error, never a panic, through everything `pytap list` and
//! `pytap info` read (notes, arg specs, dynamic section, symbols, version).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pytap_elf::ElfImage;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = ElfImage::parse(data) {
        let _ = image.probe_sites();
        let _ = image.dynamic_info();
        let _ = image.build_id();
        let _ = image.dynamic_symbol("Py_Version");
        let _ = image.cstr_at_vaddr(image.entry(), 256);
        let _ = pytap::cpython::version::detect(&image, "python3.11");
    }
});
