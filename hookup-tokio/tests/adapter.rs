//! The shared behavioural scenarios (the `hookup-testkit` crate) run against
//! hookup-tokio: its `Server` and its client, in the clear (`plain::*`) and
//! under TLS with a certificate generated at test time (`tls::*`).

use hookup_testkit as common;
use hookup_testkit::all_scenarios;
use hookup_testkit::tokio_adapter;

use tokio_adapter::{harness, runtime};

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod plain {
            $(
                #[test]
                fn $name() {
                    let _lock = super::common::test_lock(stringify!($name));
                    super::runtime().block_on(async {
                        let h = super::harness(false).await;
                        super::common::$name(&h.target).await;
                    });
                }
            )*
        }
        mod tls {
            $(
                #[test]
                fn $name() {
                    let _lock = super::common::test_lock(stringify!($name));
                    super::runtime().block_on(async {
                        let h = super::harness(true).await;
                        super::common::$name(&h.target).await;
                    });
                }
            )*
        }
    };
}

all_scenarios!(scenarios);

/// A peer that pings and never reads its pongs: the server stops reading
/// once its output queue is full, so memory stays bounded.
#[test]
fn ping_flood_memory_bounded() {
    let _lock = common::test_lock("ping_flood_memory_bounded");
    runtime().block_on(async {
        let h = harness(false).await;
        common::ping_flood_memory_bounded(&h.target).await;
    });
}
