//! PostgreSQL: the connection pool, migrations, and the platform's own tables (idempotency keys,
//! audit trail). Each service area keeps its repositories in its own folder.

pub mod audit;
pub mod embedded;
pub mod idempotency;
pub mod instance;
pub mod outbox;

use std::{path::PathBuf, time::Duration};

use sqlx::{
    ConnectOptions, Connection, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};

pub use embedded::{EmbeddedError, EmbeddedOptions, EmbeddedPostgres};

/// Every migration of every area, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Embedded(#[from] EmbeddedError),
    #[error("cannot connect to PostgreSQL at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("running the database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("preparing the database failed: {0}")]
    Setup(#[source] sqlx::Error),
}

/// Where the database is.
#[derive(Debug, Clone)]
pub enum DatabaseConfig {
    /// A server of the operator's (`DATABASE_URL`).
    Url(String),
    /// A private cluster in this data directory (the default).
    Embedded(EmbeddedOptions),
}

/// The pool, this process's instance lock, and the private cluster behind it if patchbay runs one.
pub struct Database {
    pub pool: PgPool,
    instance: instance::Instance,
    embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Connects (starting the private cluster if configured so) and runs the migrations.
    pub async fn open(config: &DatabaseConfig, max_connections: u32) -> Result<Self, StoreError> {
        let (url, embedded) = match config {
            DatabaseConfig::Url(url) => (url.clone(), None),
            DatabaseConfig::Embedded(opts) => {
                let opts = opts.clone();
                let pg = tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&opts))
                    .await
                    .expect("the embedded PostgreSQL launcher panicked")?;
                let url = pg.url("patchbay");
                create_database_if_missing(&pg.url("postgres"), "patchbay").await?;
                tracing::info!(port = pg.port(), "private PostgreSQL cluster started");
                (url, Some(pg))
            }
        };
        let pool = pool(&url, max_connections).await?;
        MIGRATOR.run(&pool).await?;
        let instance = instance::Instance::register(&url)
            .await
            .map_err(|source| StoreError::Connect { url: redact_url(&url), source })?;
        Ok(Self { pool, instance, embedded })
    }

    /// This process's instance key: the owner recorded with its leases.
    pub fn instance(&self) -> i64 {
        self.instance.key
    }

    /// Closes the pool and the instance lock, then stops the private cluster (if any) cleanly.
    pub async fn close(self) {
        self.instance.close().await;
        self.pool.close().await;
        if let Some(mut pg) = self.embedded {
            let _ = tokio::task::spawn_blocking(move || pg.stop()).await;
            tracing::info!("private PostgreSQL cluster stopped");
        }
    }
}

/// How long a call waits for a database connection before it answers UNAVAILABLE.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1500);

/// A pool for `url`; the URL shown in errors has its password removed.
pub async fn pool(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions =
        url.parse().map_err(|source| StoreError::Connect { url: redact_url(url), source })?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        // Short: with the database down a call answers UNAVAILABLE (retry later) within 2 s,
        // rather than hang; under load it sheds instead of queueing without bound.
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options.disable_statement_logging())
        .await
        .map_err(|source| StoreError::Connect { url: redact_url(url), source })
}

/// `CREATE DATABASE name` unless it exists (connecting through `admin_url`).
pub async fn create_database_if_missing(admin_url: &str, name: &str) -> Result<(), StoreError> {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|source| StoreError::Connect { url: redact_url(admin_url), source })?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut conn)
        .await
        .map_err(StoreError::Setup)?;
    if !exists {
        // Identifiers cannot be bound as parameters; `name` is quoted as an identifier.
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        sqlx::query(&sql).execute(&mut conn).await.map_err(StoreError::Setup)?;
    }
    Ok(())
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match url.parse::<reqwest::Url>() {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable DATABASE_URL>".into(),
    }
}

/// The default location of the private cluster below the data directory.
pub fn embedded_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("postgres")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_in_messages() {
        assert_eq!(redact_url("postgres://u:hunter2@db:5432/x"), "postgres://u:***@db:5432/x");
        assert_eq!(redact_url("postgres://u@db/x"), "postgres://u@db/x");
    }
}
