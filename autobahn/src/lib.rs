//! Runners that put hookup under the Autobahn TestSuite (through kosoku):
//! `autobahn-client` walks a fuzzing server's cases with a hookup-tokio
//! client. The server side is `hookup serve` (its `/echo` endpoint).
