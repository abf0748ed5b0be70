# Function and file names around the string capacity (511 bytes + NUL), so
# both packed strings of a record vary in length: (name length, file name
# length) pairs below, each function called once; see tests/kernel/trace.rs.
for name_len, file_len in ((510, 8), (511, 511), (512, 600), (700, 20)):
    name = "f" * name_len
    exec(compile(f"def {name}(): return 0", "p" * file_len, "exec"))
    globals()[name]()
