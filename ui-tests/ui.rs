//! Compile-error and compile-pass tests of `#[fourit::job]`.
//!
//! `fail/*.rs` must fail to compile with exactly the errors in the `.stderr` next to them;
//! `pass/*.rs` must compile and run. The snapshots depend on the compiler's wording, so the
//! test runs on one pinned toolchain only; see README.md.

#[test]
#[rustversion::attr(
    not(stable(1.95)),
    ignore = "UI snapshots are pinned to Rust 1.95; see ui-tests/README.md"
)]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("pass/*.rs");
    t.compile_fail("fail/*.rs");
}
