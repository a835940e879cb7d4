//! The artifact manifest digest airisk computes for an MLflow model version (docs/MLFLOW.md):
//! one line per file, sorted by relative path (bytewise), `<sha256 hex>  <size>  <path>\n`; the
//! digest is the SHA-256 of the whole manifest text.

use airisk_core::governance::model_registry::Sha256Digest;

/// One file of a model version's artifacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Path relative to the version's artifact root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
}

/// The manifest text for `entries` (sorted here, so the order given does not matter).
pub fn manifest_text(entries: &[ManifestEntry]) -> String {
    let mut sorted: Vec<&ManifestEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
    let mut text = String::new();
    for e in sorted {
        text.push_str(&format!("{}  {}  {}\n", e.sha256, e.size, e.path));
    }
    text
}

/// The manifest digest of `entries`.
pub fn manifest_digest(entries: &[ManifestEntry]) -> Sha256Digest {
    Sha256Digest::of(manifest_text(entries).as_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_sha256_of_sorted_lines_and_independent_of_order() {
        let a = ManifestEntry {
            path: "sub/weights.bin".into(),
            size: 3,
            sha256: "aa".into(),
        };
        let b = ManifestEntry {
            path: "MLmodel".into(),
            size: 15,
            sha256: "bb".into(),
        };
        let text = manifest_text(&[a.clone(), b.clone()]);
        assert_eq!(text, "bb  15  MLmodel\naa  3  sub/weights.bin\n");
        assert_eq!(manifest_digest(&[b, a]), Sha256Digest::of(text.as_bytes()));
        // Oracle: printf 'bb  15  MLmodel\naa  3  sub/weights.bin\n' | sha256sum
        assert_eq!(
            manifest_digest(&[]).to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            Sha256Digest::of(text.as_bytes()).to_hex(),
            "61256d8862b298c7326f44d703a9c03863515d327adf18b38050ef462db5aadb"
        );
    }
}
