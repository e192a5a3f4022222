//! The label store. STUB: to be implemented.
