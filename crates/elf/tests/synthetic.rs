//! Address translation on hand-built ELF files.
//!
//! Each test lays out a small ELF file byte by byte, with exactly the
//! property under test (an `ET_EXEC` at 0x400000, an `ET_DYN` whose data
//! segment's vaddr and offset differ, a prelinked file, a patchelf-style
//! shift of every file offset), so the expected offsets follow from the
//! layout rather than from the code under test.

use pytap_elf::{ElfError, ElfImage, ElfKind};

const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

struct Load {
    vaddr: u64,
    offset: u64,
    size: u64,
    flags: u32,
}

struct Section {
    name: &'static str,
    sh_type: u32,
    addr: u64,
    offset: u64,
    data: Vec<u8>,
    align: u64,
}

/// Writes an x86-64 little-endian ELF with the given segments and sections.
/// Section contents go at their stated offsets; the section name table and
/// the section headers go after everything else.
fn build(e_type: u16, loads: &[Load], sections: &[Section]) -> Vec<u8> {
    let phoff = 64u64;
    let mut out = vec![0u8; (phoff as usize) + loads.len() * 56];
    for s in sections {
        let end = (s.offset as usize) + s.data.len();
        if out.len() < end {
            out.resize(end, 0);
        }
        out[s.offset as usize..end].copy_from_slice(&s.data);
    }
    for l in loads {
        let end = (l.offset + l.size) as usize;
        if out.len() < end {
            out.resize(end, 0);
        }
    }
    // .shstrtab
    let mut shstrtab = vec![0u8];
    let mut name_offsets = Vec::new();
    for s in sections.iter().map(|s| s.name).chain([".shstrtab"]) {
        name_offsets.push(shstrtab.len() as u32);
        shstrtab.extend_from_slice(s.as_bytes());
        shstrtab.push(0);
    }
    let shstrtab_off = out.len() as u64;
    out.extend_from_slice(&shstrtab);
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    let shoff = out.len() as u64;
    let mut shdr = |name: u32, ty: u32, addr: u64, off: u64, size: u64, align: u64| {
        let mut h = Vec::new();
        h.extend_from_slice(&name.to_le_bytes());
        h.extend_from_slice(&ty.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes()); // flags
        h.extend_from_slice(&addr.to_le_bytes());
        h.extend_from_slice(&off.to_le_bytes());
        h.extend_from_slice(&size.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes()); // link
        h.extend_from_slice(&0u32.to_le_bytes()); // info
        h.extend_from_slice(&align.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes()); // entsize
        out.extend_from_slice(&h);
    };
    shdr(0, 0, 0, 0, 0, 0);
    for (s, name) in sections.iter().zip(&name_offsets) {
        shdr(
            *name,
            s.sh_type,
            s.addr,
            s.offset,
            s.data.len() as u64,
            s.align,
        );
    }
    shdr(
        *name_offsets.last().unwrap(),
        3,
        0,
        shstrtab_off,
        shstrtab.len() as u64,
        1,
    );
    // ELF header
    let mut h = Vec::new();
    h.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    h.extend_from_slice(&e_type.to_le_bytes());
    h.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&0x401000u64.to_le_bytes()); // entry
    h.extend_from_slice(&phoff.to_le_bytes());
    h.extend_from_slice(&shoff.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&64u16.to_le_bytes());
    h.extend_from_slice(&56u16.to_le_bytes());
    h.extend_from_slice(&(loads.len() as u16).to_le_bytes());
    h.extend_from_slice(&64u16.to_le_bytes());
    h.extend_from_slice(&((sections.len() + 2) as u16).to_le_bytes());
    h.extend_from_slice(&((sections.len() + 1) as u16).to_le_bytes());
    out[..64].copy_from_slice(&h);
    for (i, l) in loads.iter().enumerate() {
        let mut p = Vec::new();
        p.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        p.extend_from_slice(&l.flags.to_le_bytes());
        p.extend_from_slice(&l.offset.to_le_bytes());
        p.extend_from_slice(&l.vaddr.to_le_bytes());
        p.extend_from_slice(&l.vaddr.to_le_bytes());
        p.extend_from_slice(&l.size.to_le_bytes());
        p.extend_from_slice(&l.size.to_le_bytes());
        p.extend_from_slice(&0x1000u64.to_le_bytes());
        let at = 64 + i * 56;
        out[at..at + 56].copy_from_slice(&p);
    }
    out
}

fn note(pc: u64, base: u64, sem: u64, name: &str, args: &str) -> Vec<u8> {
    let mut desc = Vec::new();
    for a in [pc, base, sem] {
        desc.extend_from_slice(&a.to_le_bytes());
    }
    for s in ["python", name, args] {
        desc.extend_from_slice(s.as_bytes());
        desc.push(0);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(b"stapsdt\0");
    out.extend_from_slice(&desc);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out
}

fn notes_section(offset: u64, notes: &[Vec<u8>]) -> Section {
    Section {
        name: ".note.stapsdt",
        sh_type: 7,
        addr: 0,
        offset,
        data: notes.concat(),
        align: 4,
    }
}

/// The shape of Debian's python3.11: text at 0x41f000/0x1f000, data at
/// 0x946dc8/0x545dc8, `.stapsdt.base` at 0x8cd5e0.
fn exec_layout(shift: u64) -> Vec<u8> {
    build(
        ET_EXEC,
        &[
            Load {
                vaddr: 0x400000,
                offset: shift,
                size: 0x1000,
                flags: PF_R,
            },
            Load {
                vaddr: 0x41f000,
                offset: 0x1f000 + shift,
                size: 0x2000,
                flags: PF_R | PF_X,
            },
            Load {
                vaddr: 0x946dc8,
                offset: 0x545dc8 + shift,
                size: 0x300,
                flags: PF_R | PF_W,
            },
        ],
        &[
            Section {
                name: ".stapsdt.base",
                sh_type: 1,
                addr: 0x8cd5e0,
                offset: 0x30000 + shift,
                data: vec![0],
                align: 1,
            },
            notes_section(
                0x546100 + shift,
                &[
                    note(
                        0x41f0a1,
                        0x8cd5e0,
                        0x946e20,
                        "function__entry",
                        "8@%rbp 8@%r12 -4@%eax",
                    ),
                    note(
                        0x41f0d4,
                        0x8cd5e0,
                        0x946e22,
                        "function__return",
                        "8@%rbp 8@%r12 -4@%eax",
                    ),
                    note(0x41f200, 0x8cd5e0, 0, "gc__start", "-4@112(%rsp)"),
                ],
            ),
        ],
    )
}

#[test]
fn exec_offsets_follow_the_program_headers() {
    let bytes = exec_layout(0);
    let image = ElfImage::parse(&bytes[..]).unwrap();
    assert_eq!(image.kind(), ElfKind::Executable);
    let sites = image.probe_sites().unwrap();
    assert_eq!(sites.len(), 3);
    assert_eq!(sites[0].name, "function__entry");
    assert_eq!(sites[0].file_offset, Some(0x1f0a1));
    let sem = sites[0].semaphore.unwrap();
    assert_eq!((sem.address, sem.file_offset), (0x946e20, Some(0x545e20)));
    assert_eq!(sites[1].semaphore.unwrap().file_offset, Some(0x545e22));
    assert_eq!(sites[2].semaphore, None);
    assert_eq!(sites[2].arg_specs.as_ref().unwrap().len(), 1);
}

#[test]
fn a_patchelf_shift_moves_every_offset_and_no_address() {
    // patchelf inserts a page in front: same notes, same vaddrs, offsets +0x1000.
    let plain = ElfImage::parse(&exec_layout(0)[..])
        .unwrap()
        .probe_sites()
        .unwrap();
    let bytes = exec_layout(0x1000);
    let shifted = ElfImage::parse(&bytes[..]).unwrap().probe_sites().unwrap();
    for (a, b) in plain.iter().zip(&shifted) {
        assert_eq!(a.pc, b.pc);
        assert_eq!(a.file_offset.unwrap() + 0x1000, b.file_offset.unwrap());
        if let (Some(sa), Some(sb)) = (a.semaphore, b.semaphore) {
            assert_eq!(sa.address, sb.address);
            assert_eq!(sa.file_offset.unwrap() + 0x1000, sb.file_offset.unwrap());
        }
    }
}

#[test]
fn shared_object_data_segment_vaddr_and_offset_differ() {
    // libpython3.11.so: RW segment at vaddr 0x5f2350, offset 0x5f1350.
    let bytes = build(
        ET_DYN,
        &[
            Load {
                vaddr: 0,
                offset: 0,
                size: 0x1000,
                flags: PF_R,
            },
            Load {
                vaddr: 0x103000,
                offset: 0x103000,
                size: 0x1000,
                flags: PF_R | PF_X,
            },
            Load {
                vaddr: 0x5f2350,
                offset: 0x5f1350,
                size: 0x1000,
                flags: PF_R | PF_W,
            },
        ],
        &[notes_section(
            0x5f3000,
            &[note(0x103456, 0, 0x5f2400, "gc__done", "-8@%r12")],
        )],
    );
    let image = ElfImage::parse(&bytes[..]).unwrap();
    assert_eq!(image.kind(), ElfKind::SharedObject);
    let site = &image.probe_sites().unwrap()[0];
    assert_eq!(site.file_offset, Some(0x103456));
    assert_eq!(site.semaphore.unwrap().file_offset, Some(0x5f1400));
}

#[test]
fn prelinked_notes_are_moved_by_the_stapsdt_base_delta() {
    // The notes were written when .stapsdt.base was at 0x8cd5e0; prelink
    // then moved the whole image up by 0x10000.
    let d = 0x10000;
    let bytes = build(
        ET_EXEC,
        &[
            Load {
                vaddr: 0x41f000 + d,
                offset: 0x1f000,
                size: 0x2000,
                flags: PF_R | PF_X,
            },
            Load {
                vaddr: 0x946dc8 + d,
                offset: 0x545dc8,
                size: 0x300,
                flags: PF_R | PF_W,
            },
        ],
        &[
            Section {
                name: ".stapsdt.base",
                sh_type: 1,
                addr: 0x8cd5e0 + d,
                offset: 0x30000,
                data: vec![0],
                align: 1,
            },
            notes_section(
                0x546100,
                &[note(
                    0x41f0a1,
                    0x8cd5e0,
                    0x946e20,
                    "line",
                    "8@%r14 8@%rax -4@%ebp",
                )],
            ),
        ],
    );
    let site = &ElfImage::parse(&bytes[..]).unwrap().probe_sites().unwrap()[0];
    assert_eq!(site.pc, 0x41f0a1);
    assert_eq!(site.address, 0x41f0a1 + d);
    assert_eq!(site.file_offset, Some(0x1f0a1));
    let sem = site.semaphore.unwrap();
    assert_eq!(
        (sem.note_address, sem.address, sem.file_offset),
        (0x946e20, 0x946e20 + d, Some(0x545e20))
    );
}

#[test]
fn an_address_outside_every_segment_has_no_offset() {
    let bytes = build(
        ET_EXEC,
        &[Load {
            vaddr: 0x400000,
            offset: 0,
            size: 0x2000,
            flags: PF_R | PF_X,
        }],
        &[notes_section(
            0x3000,
            &[note(0x900000, 0, 0x400010, "audit", "8@%rbx 8@%r15")],
        )],
    );
    let site = &ElfImage::parse(&bytes[..]).unwrap().probe_sites().unwrap()[0];
    assert_eq!(site.file_offset, None);
    // The semaphore is in an executable segment only: not a data address.
    assert_eq!(site.semaphore.unwrap().file_offset, None);
}

#[test]
fn no_note_section_means_no_sites() {
    let bytes = build(
        ET_EXEC,
        &[Load {
            vaddr: 0x400000,
            offset: 0,
            size: 0x1000,
            flags: PF_R | PF_X,
        }],
        &[],
    );
    let image = ElfImage::parse(&bytes[..]).unwrap();
    assert!(!image.has_stapsdt());
    assert_eq!(image.probe_sites().unwrap(), vec![]);
}

#[test]
fn hostile_headers_are_errors() {
    assert_eq!(
        ElfImage::parse(&b"hello world, not an elf"[..]).unwrap_err(),
        ElfError::NotElf
    );
    assert_eq!(ElfImage::parse(&b""[..]).unwrap_err(), ElfError::NotElf);
    assert_eq!(
        ElfImage::parse(&b"\x7fELF\x02"[..]).unwrap_err(),
        ElfError::Truncated
    );
    let good = exec_layout(0);
    let mut elf32 = good.clone();
    elf32[4] = 1;
    assert_eq!(ElfImage::parse(&elf32[..]).unwrap_err(), ElfError::Elf32);
    let mut be = good.clone();
    be[5] = 2;
    assert_eq!(ElfImage::parse(&be[..]).unwrap_err(), ElfError::BigEndian);
    let mut arm = good.clone();
    arm[18] = 183; // EM_AARCH64
    assert_eq!(
        ElfImage::parse(&arm[..]).unwrap_err(),
        ElfError::Machine(183)
    );
    let mut core = good.clone();
    core[16] = 4; // ET_CORE
    assert_eq!(
        ElfImage::parse(&core[..]).unwrap_err(),
        ElfError::FileType(4)
    );
    // Every prefix of a valid file is an error or a smaller valid file, never
    // a panic: every cut through the headers, then a sample through the body.
    let cuts = (0..4096)
        .chain((4096..good.len()).step_by(997))
        .chain(good.len() - 4096..good.len());
    for cut in cuts {
        if let Ok(image) = ElfImage::parse(&good[..cut]) {
            let _ = image.probe_sites();
            let _ = image.dynamic_info();
        }
    }
    // Section headers pointing far outside the file.
    let mut wild = good.clone();
    wild[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        ElfImage::parse(&wild[..]),
        Err(ElfError::Malformed(_))
    ));
}

#[test]
fn segment_offsets_near_the_top_of_u64_do_not_overflow() {
    // Found by the elf_image fuzz target: a PT_LOAD whose p_offset is close
    // to u64::MAX made vaddr → offset arithmetic overflow.
    let mut bytes = build(
        ET_EXEC,
        &[Load {
            vaddr: 0x400000,
            offset: 0,
            size: 0x1000,
            flags: PF_R | PF_X,
        }],
        &[],
    );
    let p_offset = 64 + 8;
    bytes[p_offset..p_offset + 8].copy_from_slice(&(u64::MAX - 0x10).to_le_bytes());
    let Ok(image) = ElfImage::parse(&bytes[..]) else {
        return; // Rejecting the file outright is fine too.
    };
    assert_eq!(image.file_offset(0x400100, None), None);
    assert_eq!(image.read_at_vaddr(0x400100, 4), None);
    assert_eq!(image.cstr_at_vaddr(0x400100, 16), None);
}
