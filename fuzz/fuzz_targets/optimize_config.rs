//! An `optimize --config` TOML file: parsed, and resolved into the run's settings.

#![no_main]

use glov_cuda::glov::settings::ConfigFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else { return };
    if let Ok(config) = ConfigFile::parse(text) {
        let _ = config.settings.resolve();
    }
});
