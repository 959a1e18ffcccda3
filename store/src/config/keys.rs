//! The keys a config file may have, and the nearest valid key to a misspelt one (a typo is
//! never silently ignored: `parse` refuses unknown keys and names the likely intended one).

/// Every top-level key the file may have.
pub const KNOWN_KEYS: &[&str] = &[
    "roboflow_api_key",
    "video_path",
    "CLIP",
    "address",
    "jpeg_quality",
    "display_width",
    "max_decoders",
    "frame_cache",
    "frame_cache_mb",
    "display_proxy",
    "backend",
    "model",
    "models",
    "roboflow_url",
    "embeddings_dir",
    "sample_fps",
    "batch_size",
    "image_runtime",
    // The old name of `image_runtime`, still accepted.
    "image_engine",
    "precision",
    "max_num_patches",
    "skip_similar",
    "auth_token",
    "allowed_hosts",
    "checkpoint_secs",
    "library_dirs",
    "max_upload_mb",
    "max_indexing_jobs",
    "clip_max_s",
    "progressive",
    "coarse_interval_s",
    "progressive_memory_mb",
    "index_library",
];

/// The known key closest to a misspelt one, if any is close enough to be a likely typo.
pub(super) fn nearest_key(key: &str) -> Option<&'static str> {
    let lower = key.to_lowercase();
    KNOWN_KEYS
        .iter()
        .map(|known| (edit_distance(&lower, &known.to_lowercase()), *known))
        .filter(|(distance, known)| *distance <= (known.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn near_misses_find_their_key_and_strangers_none() {
        assert_eq!(nearest_key("vidoe_path"), Some("video_path"));
        assert_eq!(nearest_key("clip"), Some("CLIP"));
        assert_eq!(nearest_key("something_else"), None);
    }
}
