//! Container names: validation with Docker's rule and generated `adjective_noun` names.

use rand::Rng;

const LEFT: &[&str] = &[
    "agile", "bold", "brave", "bright", "calm", "clever", "cool", "crisp", "daring", "eager",
    "fair", "fond", "gentle", "glad", "happy", "hardy", "keen", "kind", "lively", "lucid", "merry",
    "mighty", "nimble", "noble", "patient", "placid", "proud", "quick", "quiet", "rapid", "serene",
    "sharp", "silent", "steady", "sunny", "swift", "tidy", "vivid", "warm", "wise", "witty", "zen",
];
const RIGHT: &[&str] = &[
    "anchor", "atoll", "bay", "beacon", "buoy", "cabin", "capstan", "cargo", "compass", "cove",
    "current", "deck", "dock", "estuary", "ferry", "fjord", "galley", "harbor", "helm", "hull",
    "inlet", "jetty", "keel", "lagoon", "lantern", "mast", "mooring", "narrows", "pier", "port",
    "quay", "reef", "rudder", "sail", "schooner", "shoal", "sound", "tide", "wharf", "yawl",
];

/// A random `adjective_noun` name.
pub fn generate() -> String {
    let mut r = rand::rng();
    format!(
        "{}_{}",
        LEFT[r.random_range(0..LEFT.len())],
        RIGHT[r.random_range(0..RIGHT.len())]
    )
}

/// Docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, an optional leading `/`.
pub fn valid(name: &str) -> bool {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut chars = n.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    n.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for (n, ok) in [
            ("web", true),
            ("/web", true),
            ("a", false),
            ("-x", false),
            ("a b", false),
            ("a.b_c-d", true),
            ("", false),
        ] {
            assert_eq!(valid(n), ok, "{n}");
        }
        assert!(valid(&generate()));
    }
}
