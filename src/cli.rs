//! The command line: subcommands and the options each one takes. Definitions only; `main`
//! dispatches and [`Cli::global`] hands the values on.
//!
//! Every subcommand takes only the options it uses, so a meaningless one (`render
//! --endpoint`, `check --noop`) is a usage error instead of being silently ignored. The
//! option groups shared by several subcommands are the `*Args` structs below.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;
use crate::logging::LogLevel;

/// reconfd keeps configuration files in line with etcd: it watches keys, renders templates,
/// checks the staged file, installs it atomically and reloads the service.
#[derive(Debug, Parser)]
#[command(name = "reconfd", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Parses the process's command line; exits 2 on a usage error, and 78 (a configuration
/// error, as when the config file holds it) on an invalid `--log-level`/`RECONFD_LOG_LEVEL`.
pub fn parse() -> Cli {
    parse_from(std::env::args_os())
}

/// [`parse`] for a given argument list (the program name first).
pub fn parse_from<I, T>(args: I) -> Cli
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let log_level = e.kind() == clap::error::ErrorKind::ValueValidation
                && matches!(
                    e.get(clap::error::ContextKind::InvalidArg),
                    Some(clap::error::ContextValue::String(a)) if a.starts_with("--log-level")
                );
            if log_level {
                let _ = e.print();
                std::process::exit(crate::exit::CONFIG.into());
            }
            e.exit()
        }
    }
}

/// Where the configuration is: `--config`, `--confdir`. Each also reads a `RECONFD_*`
/// environment variable; the command line wins over the environment, which wins over the
/// file.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// Daemon config file (a missing default file means built-in defaults).
    #[arg(long, value_name = "PATH", env = "RECONFD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory holding conf.d/ and templates/ [default: /etc/reconfd].
    #[arg(long, value_name = "DIR", env = "RECONFD_CONFDIR")]
    pub confdir: Option<PathBuf>,
}

/// How to reach etcd, overriding `[etcd]` and `prefix` of the config file.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "etcd")]
pub struct EtcdArgs {
    /// etcd endpoint URL; repeat for every cluster member (env: comma-separated).
    #[arg(
        long = "endpoint",
        value_name = "URL",
        env = "RECONFD_ENDPOINTS",
        value_delimiter = ','
    )]
    pub endpoints: Vec<String>,
    /// Global key prefix, joined before each resource's prefix.
    #[arg(long, value_name = "P", env = "RECONFD_PREFIX")]
    pub prefix: Option<String>,
    /// etcd username; setting it turns authentication on.
    #[arg(long, value_name = "U", env = "RECONFD_USERNAME")]
    pub username: Option<String>,
    /// File holding the etcd password.
    #[arg(long, value_name = "F", env = "RECONFD_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// PEM bundle of the CA that signs etcd's certificates.
    #[arg(long, value_name = "F", env = "RECONFD_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate.
    #[arg(long, value_name = "F", env = "RECONFD_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// PEM client key.
    #[arg(long, value_name = "F", env = "RECONFD_KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

/// Logging, for the subcommands that log.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log level: error, warn, info, debug, trace, or a directive list such as
    /// "warn,reconfd::etcd=debug" [default: info, or log_level in the config file].
    #[arg(long, value_name = "LEVEL", env = "RECONFD_LOG_LEVEL")]
    pub log_level: Option<LogLevel>,
    /// Where logs go: journald (with structured fields), stderr, or auto (journald when
    /// stderr is the journal).
    #[arg(long, value_enum, default_value = "auto", env = "RECONFD_LOG_TARGET")]
    pub log_target: crate::logging::Target,
    /// Format of stderr lines.
    #[arg(long, value_enum, default_value = "text", env = "RECONFD_LOG_FORMAT")]
    pub log_format: crate::logging::Format,
}

/// Where the running daemon can be watched from, overriding `[metrics]` and `[control]`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Monitoring")]
pub struct ObserveArgs {
    /// Serve /metrics, /healthz and /readyz on ADDR:PORT (e.g. 127.0.0.1:9612) or an
    /// absolute unix socket path [default: off, or metrics.listen in the config file].
    #[arg(long, value_name = "ADDR", env = "RECONFD_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// The control socket `reconfd status` talks to [default: /run/reconfd/control.sock, or
    /// control.socket in the config file].
    #[arg(long, value_name = "PATH", env = "RECONFD_CONTROL_SOCKET")]
    pub control_socket: Option<PathBuf>,
}

/// Every option a subcommand may take, merged into one view; what a subcommand does not take
/// stays at its default. Built by [`Cli::global`].
#[derive(Debug, Clone, Default)]
pub struct GlobalArgs {
    /// `--config`, `--confdir`.
    pub config: ConfigArgs,
    /// The etcd connection options.
    pub etcd: EtcdArgs,
    /// `--noop` (`run`, `once`).
    pub noop: bool,
    /// `--log-level`
    pub log_level: Option<LogLevel>,
    /// `--log-target`
    pub log_target: crate::logging::Target,
    /// `--log-format`
    pub log_format: crate::logging::Format,
    /// `--metrics-listen`, `--control-socket` (`run`).
    pub observe: ObserveArgs,
}

impl Cli {
    /// The options of the chosen subcommand, in one view.
    pub fn global(&self) -> GlobalArgs {
        let with = |config: &ConfigArgs, etcd: &EtcdArgs, noop: bool, log: &LogArgs| GlobalArgs {
            config: config.clone(),
            etcd: etcd.clone(),
            noop,
            log_level: log.log_level.clone(),
            log_target: log.log_target,
            log_format: log.log_format,
            observe: ObserveArgs::default(),
        };
        match &self.command {
            Command::Run {
                config,
                etcd,
                noop,
                log,
                observe,
                ..
            } => GlobalArgs {
                observe: observe.clone(),
                ..with(config, etcd, *noop, log)
            },
            Command::Once {
                config,
                etcd,
                noop,
                log,
                ..
            } => with(config, etcd, *noop, log),
            Command::Check {
                config, etcd, log, ..
            } => with(config, etcd, false, log),
            Command::Render { prefix, .. } => GlobalArgs {
                etcd: EtcdArgs {
                    prefix: prefix.clone(),
                    ..EtcdArgs::default()
                },
                ..GlobalArgs::default()
            },
            Command::Credentials {
                config, username, ..
            } => GlobalArgs {
                config: ConfigArgs {
                    config: config.clone(),
                    confdir: None,
                },
                etcd: EtcdArgs {
                    username: username.clone(),
                    ..EtcdArgs::default()
                },
                ..GlobalArgs::default()
            },
            Command::Status { observe, .. } | Command::Approve { observe, .. } => GlobalArgs {
                config: ConfigArgs {
                    config: observe.config.clone(),
                    confdir: None,
                },
                observe: ObserveArgs {
                    metrics_listen: None,
                    control_socket: observe.control_socket.clone(),
                },
                ..GlobalArgs::default()
            },
            Command::Confd { .. } | Command::Migrate { .. } => GlobalArgs::default(),
        }
    }
}

impl GlobalArgs {
    /// The values that override the config file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.config.clone(),
            confdir: self.config.confdir.clone(),
            endpoints: self
                .etcd
                .endpoints
                .iter()
                .filter(|e| !e.trim().is_empty())
                .cloned()
                .collect(),
            prefix: self.etcd.prefix.clone(),
            username: self.etcd.username.clone(),
            password_file: self.etcd.password_file.clone(),
            ca_file: self.etcd.ca_file.clone(),
            cert_file: self.etcd.cert_file.clone(),
            key_file: self.etcd.key_file.clone(),
            log_level: self.log_level.clone().map(String::from),
            metrics_listen: self.observe.metrics_listen.clone(),
            control_socket: self.observe.control_socket.clone(),
        }
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as a daemon: follow etcd's changes, batch them per resource, keep every
    /// destination in line. SIGHUP reloads the configuration; SIGTERM stops.
    Run {
        /// Where the configuration is.
        #[command(flatten)]
        config: ConfigArgs,
        /// Follow etcd and show what would change (a diff) and run check_cmd, but write and
        /// reload nothing.
        #[arg(long)]
        noop: bool,
        /// Re-read etcd every SECS seconds instead of watching it (confd's interval mode).
        #[arg(long, value_name = "SECS")]
        interval: Option<u64>,
        /// How to reach etcd.
        #[command(flatten)]
        etcd: EtcdArgs,
        /// Logging.
        #[command(flatten)]
        log: LogArgs,
        /// Metrics listener and control socket.
        #[command(flatten)]
        observe: ObserveArgs,
    },
    /// Show how the running daemon's resources stand, from its control socket: state,
    /// revision, last install, pending changes or deferred reload, last error.
    ///
    /// Exit status: 0 every resource in sync (or deferred by the reload limit); 1 a resource
    /// is failing, held or not reconciled yet; 3 no daemon answers on the control socket;
    /// 77 the socket refused this user (only root and the daemon's user may ask).
    Status {
        /// Print JSON (one object) instead of the table.
        #[arg(long)]
        json: bool,
        /// Where the daemon listens.
        #[command(flatten)]
        observe: ClientArgs,
    },
    /// Install the held render of a resource (one its guard stopped), through the running
    /// daemon's control socket. Prints what came of it: accepted, not_held or unknown.
    ///
    /// Exit status: 0 accepted; 1 not held or no such resource; 3 no daemon answers; 77
    /// refused.
    Approve {
        /// The resource's name (its file name without .toml).
        #[arg(value_name = "NAME")]
        resource: String,
        /// Where the daemon listens.
        #[command(flatten)]
        observe: ClientArgs,
    },
    /// Render every resource once from one consistent read of etcd, then exit
    /// (non-zero if any resource failed).
    Once {
        /// Where the configuration is.
        #[command(flatten)]
        config: ConfigArgs,
        /// Show what would change (a diff) and run check_cmd, but write and reload nothing.
        #[arg(long)]
        noop: bool,
        /// Install renders the guard (min_keys, max_shrink) would hold; without it a held
        /// resource counts as failed (exit 1) and its file stays as it is.
        #[arg(long)]
        force: bool,
        /// How to reach etcd.
        #[command(flatten)]
        etcd: EtcdArgs,
        /// Logging.
        #[command(flatten)]
        log: LogArgs,
    },
    /// Validate the config, every resource and every template without contacting etcd.
    Check {
        /// Where the configuration is.
        #[command(flatten)]
        config: ConfigArgs,
        /// The etcd settings to validate (TLS and password files are read, etcd is not
        /// contacted).
        #[command(flatten)]
        etcd: EtcdArgs,
        /// Logging.
        #[command(flatten)]
        log: LogArgs,
        /// Print, instead of the summary, the systemd drop-in ([Service] ReadWritePaths=) that
        /// the sandboxed unit needs to write the destinations of the configured resources.
        /// Problems still go to stderr and set the exit code.
        #[arg(long)]
        print_systemd_paths: bool,
    },
    /// Store or remove the etcd password of --username (or etcd.username) in the system
    /// keyring, for `password_keyring = true`. The keyring is the Secret Service of a user
    /// session; a system service has none and should use a systemd credential instead.
    Credentials {
        /// Daemon config file, for etcd.username (a missing default file means built-in
        /// defaults).
        #[arg(long, global = true, value_name = "PATH", env = "RECONFD_CONFIG")]
        config: Option<PathBuf>,
        /// etcd username whose password is stored [default: etcd.username of the config].
        #[arg(long, global = true, value_name = "U", env = "RECONFD_USERNAME")]
        username: Option<String>,
        /// What to do with the stored password.
        #[command(subcommand)]
        action: CredentialsAction,
    },
    /// Run with confd's command line, confd.toml and /etc/confd tree.
    #[command(
        disable_help_flag = true,
        disable_version_flag = true,
        long_about = crate::confd::flags::about()
    )]
    Confd {
        /// confd's flags, passed through verbatim (see `reconfd confd -h`).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CONFD_FLAGS"
        )]
        args: Vec<OsString>,
    },
    /// Render one template from a data file, without etcd, to stdout.
    Render {
        /// The template; `.tmpl` files are confd Go templates, anything else is Tera.
        #[arg(long, value_name = "FILE")]
        template: PathBuf,
        /// Flat mapping of full keys to string values, in JSON, TOML or YAML (by extension).
        #[arg(long, value_name = "FILE")]
        data: PathBuf,
        /// Key prefix the template's keys are relative to, as a resource's global prefix.
        #[arg(long, value_name = "P", env = "RECONFD_PREFIX")]
        prefix: Option<String>,
    },
    /// Convert a confd tree into a reconfd tree, templates to Tera where that is exact.
    ///
    /// Reads <from>/conf.d/**/*toml with confd's rules and writes each resource, with
    /// reconfd's field forms, to <to>/conf.d/ (nested names flattened with `-`). Each
    /// template is translated to Tera where the translation renders exactly what the Go
    /// template renders, for any etcd data; otherwise it is copied and stays a Go template,
    /// which reconfd runs as well. Prints per resource what it did and, for a kept
    /// template, the first construct that has no exact translation (file:line:col) and why.
    /// Never replaces a file that differs without --force. Exit 0 when every resource was
    /// written (a kept Go template counts), 1 when some could not be migrated or a file was
    /// in the way, 2 when the directories cannot be used. See docs/migrate.md.
    Migrate {
        /// The confd directory, holding conf.d/ and templates/ (e.g. /etc/confd).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The reconfd directory to write (e.g. /etc/reconfd).
        #[arg(long, value_name = "DIR")]
        to: PathBuf,
        /// Print the report, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Overwrite existing files whose content differs.
        #[arg(long)]
        force: bool,
    },
}

/// How `status` and `approve` find the daemon's control socket.
#[derive(Debug, Clone, Default, Args)]
pub struct ClientArgs {
    /// The daemon's config file, for control.socket (a missing default file means the default
    /// socket).
    #[arg(long, value_name = "PATH", env = "RECONFD_CONFIG")]
    pub config: Option<PathBuf>,
    /// The control socket [default: control.socket of the config, else
    /// /run/reconfd/control.sock].
    #[arg(long, value_name = "PATH", env = "RECONFD_CONTROL_SOCKET")]
    pub control_socket: Option<PathBuf>,
    /// The socket of the instance reconfd@NAME (/run/reconfd-NAME/control.sock).
    #[arg(long, value_name = "NAME", conflicts_with = "control_socket")]
    pub instance: Option<String>,
}

/// `reconfd credentials` actions.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum CredentialsAction {
    /// Read the password from standard input (without echo on a terminal) and store it;
    /// one trailing newline is not part of it.
    Set,
    /// Remove the stored password.
    Delete,
}
