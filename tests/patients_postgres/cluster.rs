//! The shared test cluster (tests/support/postgres.rs), with a client on each fresh database
//! to load the patients with. Without PostgreSQL the tests print SKIPPED and pass, unless
//! `STEPRULE_REQUIRE_POSTGRES=1`.

use crate::pg;

pub use pg::PASSWORD;

pub struct Cluster(&'static pg::PgServer);

/// The cluster, or `None` (after printing why) when there is none and none is required.
pub fn cluster() -> Option<Cluster> {
    pg::server().map(Cluster)
}

impl Cluster {
    /// A new empty database, and a client connected to it.
    pub fn fresh_database(&self, name: &str) -> (String, postgres::Client) {
        let url = self.0.fresh_database(name);
        let client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
        (url, client)
    }

    pub fn server(&self) -> &pg::PgServer {
        self.0
    }
}
