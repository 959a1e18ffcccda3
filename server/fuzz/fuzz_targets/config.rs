//! Any text as config.yaml: parsed or refused with a message, never a panic, and whatever is
//! accepted satisfies the checks the server relies on.
#![no_main]

use store::config::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Settings::parse(&text, std::path::Path::new("fuzz.yaml")) {
        Ok(settings) => {
            assert!((1..=100).contains(&settings.jpeg_quality));
            assert!(settings.max_decoders >= 1);
            assert!((1..=256).contains(&settings.batch_size));
            assert!(settings.max_indexing_jobs >= 1);
            assert!(settings.max_upload_mb >= 1);
            assert!(settings.sample_fps.is_none_or(|f| f.is_finite() && f > 0.0));
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
});
