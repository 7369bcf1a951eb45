//! Placement requests as the admin API and `sheaf placement` read them: an init body, then
//! add, remove and replace bodies applied to what it built. Every result must pass the
//! placement's invariants or be a `PlacementError`.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sheaf::cluster::placement::{AddRequest, InitRequest, Options, RemoveRequest, ReplaceRequest, validate};

const NOW: i64 = 1_700_000_000_000_000_000;

fuzz_target!(|data: &[u8]| {
    // Bodies separated by NUL bytes: init, then any number of add / remove / replace.
    let mut bodies = data.split(|&b| b == 0);
    let Some(Ok(init)) = bodies.next().map(serde_json::from_slice::<InitRequest>) else { return };
    // Keep each case small: the operations are linear in shards × instances.
    if init.num_shards > 4096 || init.instances.len() > 64 {
        return;
    }
    let Ok(mut placement) = init.apply() else { return };
    validate(&placement).expect("init built an invalid placement");
    let options = Options { warmup: Duration::from_secs(10), alignment: Duration::from_secs(60) };
    for body in bodies {
        let next = if let Ok(add) = serde_json::from_slice::<AddRequest>(body) {
            if add.instances.len() > 64 {
                continue;
            }
            add.apply(&placement, NOW, &options)
        } else if let Ok(remove) = serde_json::from_slice::<RemoveRequest>(body) {
            remove.apply(&placement, NOW, &options)
        } else if let Ok(replace) = serde_json::from_slice::<ReplaceRequest>(body) {
            if replace.candidates.len() > 64 {
                continue;
            }
            replace.apply(&placement, NOW, &options)
        } else {
            continue;
        };
        if let Ok(next) = next {
            validate(&next).expect("an operation built an invalid placement");
            placement = next;
        }
    }
});
