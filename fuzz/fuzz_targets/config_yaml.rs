//! The config loader (`sheaf run --config`, `sheaf check-config`): any text is either a
//! config that passed every check or a `ConfigError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheaf::config::Config;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(config) = Config::parse(text)
    {
        let _ = config.storage_policies();
    }
});
