//! The two bounds that trip most first programs fail to compile with a message that names the
//! fix (`#[diagnostic::on_unimplemented]` on `CloneRequest` and `AuthTransport`), not with a bare
//! unsatisfied bound. The `.stderr` snapshots hold the exact messages; they follow rustc's
//! wording, so a new compiler may need `TRYBUILD=overwrite cargo test --test diagnostics`.

#[test]
fn unmet_bounds_name_the_fix() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
