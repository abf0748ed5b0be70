//! `BTF_KIND_*`, and how long each kind's record is.

/// `BTF_KIND_*`: what a type record describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `BTF_KIND_INT` (followed by a `u32` encoding: bits, offset, signedness).
    Int = 1,
    /// `BTF_KIND_PTR`.
    Ptr = 2,
    /// `BTF_KIND_ARRAY` (followed by element type, index type, count).
    Array = 3,
    /// `BTF_KIND_STRUCT` (followed by `vlen` members).
    Struct = 4,
    /// `BTF_KIND_UNION` (followed by `vlen` members).
    Union = 5,
    /// `BTF_KIND_ENUM` (followed by `vlen` 32-bit values).
    Enum = 6,
    /// `BTF_KIND_FWD`: a struct or union declared but not defined.
    Fwd = 7,
    /// `BTF_KIND_TYPEDEF`.
    Typedef = 8,
    /// `BTF_KIND_VOLATILE`.
    Volatile = 9,
    /// `BTF_KIND_CONST`.
    Const = 10,
    /// `BTF_KIND_RESTRICT`.
    Restrict = 11,
    /// `BTF_KIND_FUNC`.
    Func = 12,
    /// `BTF_KIND_FUNC_PROTO` (followed by `vlen` parameters).
    FuncProto = 13,
    /// `BTF_KIND_VAR` (followed by its linkage).
    Var = 14,
    /// `BTF_KIND_DATASEC` (followed by `vlen` variables).
    Datasec = 15,
    /// `BTF_KIND_FLOAT`.
    Float = 16,
    /// `BTF_KIND_DECL_TAG` (followed by a component index).
    DeclTag = 17,
    /// `BTF_KIND_TYPE_TAG`.
    TypeTag = 18,
    /// `BTF_KIND_ENUM64` (followed by `vlen` 64-bit values).
    Enum64 = 19,
}

impl Kind {
    pub(super) fn from_raw(raw: u8) -> Option<Kind> {
        use Kind::*;
        const ALL: [Kind; 19] = [
            Int, Ptr, Array, Struct, Union, Enum, Fwd, Typedef, Volatile, Const, Restrict, Func,
            FuncProto, Var, Datasec, Float, DeclTag, TypeTag, Enum64,
        ];
        ALL.get(usize::from(raw).checked_sub(1)?).copied()
    }

    /// Bytes that follow a record of this kind with `vlen` items.
    pub(super) fn trailer_len(self, vlen: usize) -> usize {
        use Kind::*;
        match self {
            Ptr | Fwd | Typedef | Volatile | Const | Restrict | Func | Float | TypeTag => 0,
            Int | Var | DeclTag => 4,
            Array => 12,
            Struct | Union | Datasec | Enum64 => 12 * vlen,
            Enum | FuncProto => 8 * vlen,
        }
    }

    /// Whether the kind only qualifies or renames the type it refers to.
    pub(super) fn is_alias(self) -> bool {
        use Kind::*;
        matches!(self, Typedef | Volatile | Const | Restrict | TypeTag)
    }
}
