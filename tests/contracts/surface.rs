//! The public surface is a decision: `tests/contracts/surface.txt` lists every nameable item and public
//! function (made by `scripts/surface`, which CI runs with `--check` to keep the file true), and
//! this test bounds its size.

/// The ceilings today. They only go down: the goal is at most 40 items and 120 functions.
const MAX_ITEMS: usize = 41;
const MAX_FNS: usize = 119;

#[test]
fn the_public_surface_stays_within_its_bounds() {
    let listing = include_str!("surface.txt");
    let items = listing.lines().filter(|l| l.starts_with("item ")).count();
    let fns = listing.lines().filter(|l| l.starts_with("fn ")).count();
    let why =
        "growth of the public surface is a decision: update tests/contracts/surface.txt with \
               `scripts/surface > tests/contracts/surface.txt` and justify it in the commit";
    assert!(
        items <= MAX_ITEMS,
        "{items} public items, over {MAX_ITEMS}: {why}"
    );
    assert!(
        fns <= MAX_FNS,
        "{fns} public functions, over {MAX_FNS}: {why}"
    );
    assert!(
        items > 0 && fns > 0,
        "tests/contracts/surface.txt lists nothing"
    );
}
