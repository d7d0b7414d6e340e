//! The command line: subcommands and the global options that override the config file.
//! Definitions only; `main` dispatches and [`GlobalArgs::overrides`] hands the values on.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Overrides;

/// reconfd keeps configuration files in line with etcd: it watches keys, renders templates,
/// checks the staged file, installs it atomically and reloads the service.
#[derive(Debug, Parser)]
#[command(name = "reconfd", version, propagate_version = true)]
pub struct Cli {
    /// Options shared by every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options that override the config file. Each also reads a `RECONFD_*` environment variable;
/// the command line wins over the environment, which wins over the file.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Daemon config file (a missing default file means built-in defaults).
    #[arg(long, global = true, value_name = "PATH", env = "RECONFD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory holding conf.d/ and templates/ [default: /etc/reconfd].
    #[arg(long, global = true, value_name = "DIR", env = "RECONFD_CONFDIR")]
    pub confdir: Option<PathBuf>,
    /// etcd endpoint URL; repeat for every cluster member (env: comma-separated).
    #[arg(
        long = "endpoint",
        global = true,
        value_name = "URL",
        env = "RECONFD_ENDPOINTS",
        value_delimiter = ','
    )]
    pub endpoints: Vec<String>,
    /// Global key prefix, joined before each resource's prefix.
    #[arg(long, global = true, value_name = "P", env = "RECONFD_PREFIX")]
    pub prefix: Option<String>,
    /// etcd username; setting it turns authentication on.
    #[arg(long, global = true, value_name = "U", env = "RECONFD_USERNAME")]
    pub username: Option<String>,
    /// File holding the etcd password.
    #[arg(long, global = true, value_name = "F", env = "RECONFD_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// PEM bundle of the CA that signs etcd's certificates.
    #[arg(long, global = true, value_name = "F", env = "RECONFD_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate.
    #[arg(long, global = true, value_name = "F", env = "RECONFD_CERT_FILE")]
    pub cert_file: Option<PathBuf>,
    /// PEM client key.
    #[arg(long, global = true, value_name = "F", env = "RECONFD_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Show what would change (a diff) and run check_cmd, but write and reload nothing.
    #[arg(long, global = true)]
    pub noop: bool,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long, global = true, value_name = "LEVEL", env = "RECONFD_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Where logs go: journald (with structured fields), stderr, or auto (journald when
    /// stderr is the journal).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        env = "RECONFD_LOG_TARGET"
    )]
    pub log_target: crate::logging::Target,
    /// Format of stderr lines.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "RECONFD_LOG_FORMAT"
    )]
    pub log_format: crate::logging::Format,
}

impl GlobalArgs {
    /// The values that override the config file.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            confdir: self.confdir.clone(),
            endpoints: self
                .endpoints
                .iter()
                .filter(|e| !e.trim().is_empty())
                .cloned()
                .collect(),
            prefix: self.prefix.clone(),
            username: self.username.clone(),
            password_file: self.password_file.clone(),
            ca_file: self.ca_file.clone(),
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
            log_level: self.log_level.clone(),
        }
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as a daemon: follow etcd's changes, batch them per resource, keep every
    /// destination in line. SIGHUP reloads the configuration; SIGTERM stops.
    Run {
        /// Re-read etcd every SECS seconds instead of watching it (confd's interval mode).
        #[arg(long, value_name = "SECS")]
        interval: Option<u64>,
    },
    /// Render every resource once from one consistent read of etcd, then exit
    /// (non-zero if any resource failed).
    Once,
    /// Validate the config, every resource and every template without contacting etcd.
    Check,
    /// Store or remove the etcd password of --username (or etcd.username) in the system
    /// keyring, for `password_keyring = true`. The keyring is the Secret Service of a user
    /// session; a system service has none and should use a systemd credential instead.
    Credentials {
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

/// `reconfd credentials` actions.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum CredentialsAction {
    /// Read the password from standard input (without echo on a terminal) and store it;
    /// one trailing newline is not part of it.
    Set,
    /// Remove the stored password.
    Delete,
}
