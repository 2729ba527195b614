//! Real PostgreSQL and Redis for the tests that need them: each test gets a database of its
//! own, created on the server at `WAGW_TEST_POSTGRES` (default: the machine's local server,
//! user postgres, trust auth) and dropped when the test is done.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::helpers::uuid;

/// The server the tests create their databases on.
pub fn server_url() -> String {
    std::env::var("WAGW_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// The Redis the shared rate-limit tests use.
pub fn redis_url() -> String {
    std::env::var("WAGW_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A database of one test's own; dropped (with every connection to it) when this is.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let name = format!("wagw_test_{}", uuid());
        let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL must answer at {} (see README, Development): {e}",
                    server_url()
                )
            });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
        TestDatabase {
            url: format!("{}/{name}", server_url()),
            name,
        }
    }
}

impl TestDatabase {
    /// Takes the database away under whoever uses it (connections included).
    pub async fn drop_now(&self) {
        let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .expect("admin connection");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .expect("DROP DATABASE");
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: the database goes from a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if let Ok(mut admin) =
                    PgConnection::connect(&format!("{}/postgres", server_url())).await
                {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            })
        });
        let _ = dropped.join();
    }
}
