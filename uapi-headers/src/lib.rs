//! Rust mirrors of the kernel UAPI this workspace uses and extends.
//!
//! One definition per layout. `cargo xtask test` checks every struct listed
//! in [`LAYOUTS`] against the patched kernel's `make headers_install` output
//! by compiling a C program full of `_Static_assert`s, so the Rust side and
//! the kernel headers cannot drift apart silently.

#![no_std]

pub mod io_uring;
pub mod mqueue;

/// One checked field: C name and Rust offset.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub offset: usize,
}

/// One checked struct: the header that defines it, C type name, Rust size,
/// and fields.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub header: &'static str,
    pub c_type: &'static str,
    pub size: usize,
    pub fields: &'static [Field],
}

/// One checked constant.
#[derive(Debug, Clone, Copy)]
pub struct Constant {
    pub header: &'static str,
    pub name: &'static str,
    pub value: u64,
}

/// `layout!(header, "struct c_name", RustType { field, ... })`
#[macro_export]
macro_rules! layout {
    ($hdr:expr, $cty:expr, $ty:ty { $($f:ident),* $(,)? }) => {
        $crate::Layout {
            header: $hdr,
            c_type: $cty,
            size: ::core::mem::size_of::<$ty>(),
            fields: &[$($crate::Field {
                name: stringify!($f),
                offset: ::core::mem::offset_of!($ty, $f),
            }),*],
        }
    };
}

/// `constants!(header; [A, B, ...])`: names equal in C and Rust, in scope
/// where the macro is used.
#[macro_export]
macro_rules! constants {
    ($hdr:expr; [$($c:ident),* $(,)?]) => {
        &[$($crate::Constant { header: $hdr, name: stringify!($c), value: $c as u64 }),*]
    };
}

/// `constant!(header, NAME)` for a constant named the same in C and Rust,
/// `constant!(header, C_NAME = RUST_PATH)` for one whose C name differs.
#[macro_export]
macro_rules! constant {
    ($hdr:expr, $c:ident) => {
        $crate::Constant {
            header: $hdr,
            name: stringify!($c),
            value: $c as u64,
        }
    };
    ($hdr:expr, $c:ident = $rust:path) => {
        $crate::Constant {
            header: $hdr,
            name: stringify!($c),
            value: $rust as u64,
        }
    };
}

/// Every layout checked against the kernel headers.
pub fn layouts() -> &'static [&'static [Layout]] {
    &[io_uring::LAYOUTS, mqueue::LAYOUTS]
}

/// Every constant checked against the kernel headers.
pub fn constants() -> &'static [&'static [Constant]] {
    &[io_uring::CONSTANTS, mqueue::CONSTANTS]
}
