//! Autobahn conformance harness support.
