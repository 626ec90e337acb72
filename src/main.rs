//! The `patchbay` command: a thin shell around the library.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use patchbay::{
    App, AppError, Settings, app,
    ops::auth::TokenHash,
    registry::{self, secrets},
    store::{DatabaseConfig, EmbeddedOptions, embedded_dir},
};

#[derive(Parser)]
#[command(
    name = "patchbay",
    version,
    about = "Multi-tenant gRPC gateway from an ISP's CRM to its voice, dialer and number vendors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the gRPC server, the public HTTP listener (vendor callbacks) and the operations
    /// listener (/healthz, /readyz, /metrics).
    Serve(Box<ServeArgs>),
    /// Checks tenant files and prints every problem as file:line:col: key.path: message.
    /// Exits 1 on any problem.
    Validate {
        /// The providers directory.
        #[arg(default_value = "providers.d", env = "PATCHBAY_PROVIDERS_DIR")]
        dir: PathBuf,
        /// Check the syntax of ${env:..}/${file:..} references without resolving them (for a CI
        /// machine that does not hold the production secrets).
        #[arg(long)]
        skip_secrets: bool,
    },
    /// Prints the JSON Schema of a tenant file (for editors: `# yaml-language-server: $schema=...`).
    Schema,
    /// Runs a vendor simulator on its own (the same one `api_url: simulator` runs in-process), seeded
    /// with the demo data, until Ctrl-C. Point a tenant's `api_url` at the URL it prints.
    Sim {
        /// The provider whose simulator to run.
        #[arg(value_parser = sim_names())]
        vendor: String,
        /// Where to listen; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
    },
    /// Prints the `sha256:<hex>` form of a bearer token, for `access.tokens` or PATCHBAY_ADMIN_TOKENS.
    HashToken {
        /// The token; read from standard input when omitted (keeps it out of shell history).
        token: Option<String>,
    },
}

/// The providers that have a simulator in this build, from the areas' own provider lists.
fn sim_names() -> clap::builder::PossibleValuesParser {
    let names: Vec<_> = app::simulators()
        .into_iter()
        .map(|(name, sim)| clap::builder::PossibleValue::new(name).help(sim.about))
        .collect();
    clap::builder::PossibleValuesParser::new(names)
}

#[derive(clap::Args)]
struct ServeArgs {
    /// PostgreSQL URL. Unset: a private cluster under the data directory, from this machine's binaries.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[arg(long, env = "PATCHBAY_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    grpc_addr: SocketAddr,
    /// The public listener: vendor callbacks only.
    #[arg(long, env = "PATCHBAY_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    http_addr: SocketAddr,
    /// The operations listener: /healthz, /readyz, /metrics (keep it off public interfaces).
    #[arg(long, env = "PATCHBAY_OPS_ADDR", default_value = "127.0.0.1:9090")]
    ops_addr: SocketAddr,
    #[arg(long, env = "PATCHBAY_PROVIDERS_DIR", default_value = "providers.d")]
    providers_dir: PathBuf,
    /// Where the private PostgreSQL cluster lives (when DATABASE_URL is unset).
    #[arg(long, env = "PATCHBAY_DATA_DIR", default_value = ".patchbay")]
    data_dir: PathBuf,
    /// Comma-separated `sha256:<hex>` hashes of the tokens allowed to call RegistryService.
    #[arg(long, env = "PATCHBAY_ADMIN_TOKENS", value_delimiter = ',')]
    admin_tokens: Vec<TokenHash>,
    /// Start even if some tenant files are invalid, serving the valid ones (problems are logged).
    #[arg(long)]
    serve_valid_tenants_only: bool,
    /// The URL vendors reach the HTTP listener at, for callbacks (default: its bound address).
    #[arg(long, env = "PATCHBAY_PUBLIC_URL")]
    public_url: Option<String>,
    /// Milliseconds the providers directory must be quiet before a changed file is reloaded.
    #[arg(long, default_value_t = 250)]
    reload_debounce_ms: u64,
    /// Connections the server keeps to PostgreSQL at most (each replica; keep the sum below the
    /// server's max_connections).
    #[arg(long, env = "PATCHBAY_DB_MAX_CONNECTIONS", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    db_max_connections: u32,
    /// TLS certificate chain (PEM, leaf first) for the gRPC and callback listeners; with
    /// --tls-key. Unset: plaintext (the local demo). Re-read on SIGHUP and ReloadConfig.
    #[arg(long, env = "PATCHBAY_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "PATCHBAY_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require gRPC callers to present a client certificate signed by this CA (PEM): mTLS.
    #[arg(long, env = "PATCHBAY_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// gRPC calls served at once; more are refused at once (RESOURCE_EXHAUSTED, RetryInfo).
    #[arg(long, env = "PATCHBAY_MAX_CONCURRENT_CALLS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_concurrent_calls: u32,
    /// Milliseconds a unary call that brings no deadline may run (DEADLINE_EXCEEDED after).
    #[arg(long, env = "PATCHBAY_DEFAULT_DEADLINE_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    default_deadline_ms: u64,
    /// gRPC connections held at once; the next waits until one closes (a warning is logged).
    #[arg(long, env = "PATCHBAY_MAX_GRPC_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_grpc_connections: u32,
    /// Connections of the public HTTP listener (vendor callbacks) held at once.
    #[arg(long, env = "PATCHBAY_MAX_HTTP_CONNECTIONS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_http_connections: u32,
    /// Seconds an HTTP connection (callbacks, ops) may stay silent before it is closed.
    #[arg(long, env = "PATCHBAY_HTTP_IDLE_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    http_idle_secs: u64,
    /// Vendor HTTP calls one tenant may have in flight at once (all its providers together).
    #[arg(long, env = "PATCHBAY_TENANT_VENDOR_IN_FLIGHT", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    tenant_vendor_in_flight: u32,
    /// Serve without metrics, tracing spans and limits: only to measure what they cost
    /// (benches/account.rs); never in production.
    #[arg(long, hide = true, env = "PATCHBAY_BARE_EDGE")]
    bare_edge: bool,
}

fn main() -> ExitCode {
    let _telemetry = init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Validate { dir, skip_secrets } => validate(&dir, skip_secrets),
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(&app::tenant_file_schema()).expect("a schema is JSON"));
            ExitCode::SUCCESS
        }
        Command::HashToken { token } => hash_token(token),
        Command::Sim { vendor, addr } => sim(vendor, addr),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let database = match args.database_url {
        Some(url) => DatabaseConfig::Url(url),
        None => DatabaseConfig::Embedded(EmbeddedOptions::new(embedded_dir(&args.data_dir))),
    };
    let mut settings = Settings::new(args.providers_dir, database);
    settings.grpc_addr = args.grpc_addr;
    settings.http_addr = args.http_addr;
    settings.ops_addr = args.ops_addr;
    settings.admin_tokens = args.admin_tokens;
    settings.serve_valid_tenants_only = args.serve_valid_tenants_only;
    settings.public_url = args.public_url;
    settings.reload_debounce = Duration::from_millis(args.reload_debounce_ms);
    settings.max_db_connections = args.db_max_connections;
    settings.limits = patchbay::platform::Limits {
        max_concurrent_calls: args.max_concurrent_calls as usize,
        default_deadline: Duration::from_millis(args.default_deadline_ms),
        grpc_connections: args.max_grpc_connections as usize,
        http_connections: args.max_http_connections as usize,
        http_idle: Duration::from_secs(args.http_idle_secs),
        bare: args.bare_edge,
        ..patchbay::platform::Limits::default()
    };
    settings.tenant_vendor_in_flight = args.tenant_vendor_in_flight as usize;
    settings.tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(patchbay::ops::tls::TlsFiles { cert, key, client_ca: args.tls_client_ca }),
        _ => None,
    };

    let runtime = tokio::runtime::Runtime::new().expect("starting the Tokio runtime");
    let result = runtime.block_on(async {
        let app = App::build(settings).await?;
        app.run_until_stopped().await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(AppError::InvalidTenants(diagnostics, dir)) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            eprintln!(
                "patchbay: not started: {} problem(s) in {}; fix them, or start with --serve-valid-tenants-only",
                diagnostics.len(),
                dir.display()
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("patchbay: {err}");
            ExitCode::FAILURE
        }
    }
}

fn validate(dir: &std::path::Path, skip_secrets: bool) -> ExitCode {
    let resolver: &dyn secrets::SecretResolver =
        if skip_secrets { &secrets::SkipSecrets } else { &secrets::SystemSecrets };
    match registry::validate_dir(dir, &app::trigger_areas(), resolver) {
        Ok(summary) => {
            println!("{}: {} tenant file(s), all valid", dir.display(), summary.files);
            ExitCode::SUCCESS
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                println!("{d}");
            }
            let files = registry::group_by_file(&diagnostics).len();
            eprintln!("{} problem(s) in {files} file(s)", diagnostics.len());
            ExitCode::FAILURE
        }
    }
}

fn sim(vendor: String, addr: SocketAddr) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("starting the Tokio runtime");
    runtime.block_on(async {
        // Installed before the URL is printed: whoever reads the URL may send SIGINT at once.
        let Ok(mut interrupt) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) else {
            eprintln!("patchbay: cannot install a SIGINT handler");
            return ExitCode::FAILURE;
        };
        let Some((_, demo)) = app::simulators().into_iter().find(|(name, _)| *name == vendor) else {
            eprintln!("patchbay: no simulator named `{vendor}` in this build");
            return ExitCode::FAILURE;
        };
        // The simulator stops when dropped: keep it alive until Ctrl-C.
        let (url, _sim) = match (demo.start)(addr) {
            Ok(running) => (running.url, running.guard),
            Err(e) => return sim_failed(addr, &e),
        };
        println!("{url}");
        eprintln!("simulator serving at {url} (demo data); Ctrl-C stops it");
        interrupt.recv().await;
        ExitCode::SUCCESS
    })
}

fn sim_failed(addr: SocketAddr, err: &std::io::Error) -> ExitCode {
    eprintln!("patchbay: cannot start the simulator on {addr}: {err}");
    ExitCode::FAILURE
}

fn hash_token(token: Option<String>) -> ExitCode {
    let token = match token {
        Some(t) => t,
        None => {
            let mut line = String::new();
            if std::io::stdin().read_line(&mut line).is_err() {
                eprintln!("patchbay: cannot read the token from standard input");
                return ExitCode::FAILURE;
            }
            line.trim_end_matches(['\n', '\r']).to_owned()
        }
    };
    if token.is_empty() {
        eprintln!("patchbay: the token is empty");
        return ExitCode::FAILURE;
    }
    println!("{}", TokenHash::of_token(&token));
    ExitCode::SUCCESS
}

/// Logs to stderr, and spans to an OTLP endpoint when one is set (the returned guard flushes them
/// at exit).
fn init_tracing() -> Option<patchbay::ops::telemetry::Telemetry> {
    use std::io::IsTerminal;
    use tracing_subscriber::{EnvFilter, Layer, fmt, layer::SubscriberExt, util::SubscriberInitExt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let telemetry = match patchbay::ops::telemetry::Telemetry::from_env() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("patchbay: spans are not exported: {e}");
            None
        }
    };
    let logs = fmt::layer().with_writer(std::io::stderr);
    let logs = match std::env::var("PATCHBAY_LOG_FORMAT").as_deref() {
        // One JSON object per line, with the current span and its parents (grpc{method}, vendor{..})
        // as fields: what a log pipeline indexes.
        Ok("json") => logs.json().with_current_span(true).with_span_list(true).boxed(),
        // Colours only on a terminal: logs piped to files or journald stay plain text. A value
        // that holds a newline (a vendor's answer, a tenant file's value) cannot start a line of
        // its own: control characters in fields are shown escaped.
        _ => logs.fmt_fields(patchbay::ops::text::LogFields).with_ansi(std::io::stderr().is_terminal()).boxed(),
    };
    let spans = telemetry.as_ref().map(|t| t.layer());
    tracing_subscriber::registry().with(filter).with(logs).with(spans).init();
    telemetry
}
