//! The two bounds that trip most first programs fail to compile with a message that names the
//! fix (`#[diagnostic::on_unimplemented]` on `CloneRequest` and `AuthTransport`), not with a bare
//! unsatisfied bound. The `.stderr` snapshots hold the exact messages; they follow rustc's
//! wording, so a new compiler may need `TRYBUILD=overwrite cargo test --all-features --test
//! diagnostics`.

#[test]
fn unmet_bounds_name_the_fix() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    // A `reqwest::Client` as the auth transport: the note names `ReqwestTransport` (the case needs
    // reqwest, which only the feature brings).
    #[cfg(feature = "reqwest")]
    cases.compile_fail("tests/ui/reqwest/*.rs");
}
