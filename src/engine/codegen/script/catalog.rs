//! CPython's markers as the script compiler sees them: names, argument
//! counts, which are function markers. A probe's marker is an index into
//! this list, which is [`Marker::ALL`]'s order, the order the placement
//! and the lowering read the index in; so the list is the code
//! generator's, and the compiler step above it and this room's own tests
//! take it from here.

use pytap_script::check::{Catalog, MarkerInfo};

use crate::cpython::Marker;

/// CPython's markers as scripts see them.
pub fn catalog() -> Catalog {
    Catalog {
        markers: Marker::ALL
            .iter()
            .map(|m| MarkerInfo {
                name: m.name().to_string(),
                args: m.args().len(),
                function: matches!(m, Marker::FunctionEntry | Marker::FunctionReturn),
            })
            .collect(),
    }
}
