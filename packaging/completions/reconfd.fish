# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_reconfd_global_optspecs
    string join \n h/help V/version
end

function __fish_reconfd_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_reconfd_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_reconfd_using_subcommand
    set -l cmd (__fish_reconfd_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c reconfd -n "__fish_reconfd_needs_command" -s h -l help -d 'Print help'
complete -c reconfd -n "__fish_reconfd_needs_command" -s V -l version -d 'Print version'
complete -c reconfd -n "__fish_reconfd_needs_command" -f -a "run" -d 'Run as a daemon: follow etcd\'s changes, batch them per resource, keep every destination in line. SIGHUP reloads the configuration; SIGTERM stops'
complete -c reconfd -n "__fish_reconfd_needs_command" -f -a "status" -d 'Show how the running daemon\'s resources stand, from its control socket: state, revision, last install, pending changes or deferred reload, last error'
complete -c reconfd -n "__fish_reconfd_needs_command" -f -a "approve" -d 'Install the held render of a resource (one its guard stopped), through the running daemon\'s control socket. Prints what came of it: accepted, not_held or unknown'
complete -c reconfd -n "__fish_reconfd_needs_command" -f -a "once" -d 'Render every resource once from one consistent read of etcd, then exit (non-zero if any resource failed)'
complete -c reconfd -n "__fish_reconfd_needs_command" -f -a "check" -d 'Validate the config, every resource and every template without contacting etcd'
complete -c reconfd -n "__fish_reconfd_needs_command" -f -a "credentials" -d 'Store or remove the etcd password of --username (or etcd.username) in the system keyring, for `password_keyring = true`. The keyring is the Secret Service of a user session; a system service has none and should use a systemd credential instead'
complete -c reconfd -n "__fish_reconfd_needs_command" -f -a "confd" -d 'Run with confd\'s command line, confd.toml and /etc/confd tree'
complete -c reconfd -n "__fish_reconfd_needs_command" -f -a "render" -d 'Render one template from a data file, without etcd, to stdout'
complete -c reconfd -n "__fish_reconfd_needs_command" -f -a "migrate" -d 'Convert a confd tree into a reconfd tree, templates to Tera where that is exact'
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l config -d 'Daemon config file (a missing default file means built-in defaults)' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l confdir -d 'Directory holding conf.d/ and templates/ [default: /etc/reconfd]' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l interval -d 'Re-read etcd every SECS seconds instead of watching it (confd\'s interval mode)' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l endpoint -d 'etcd endpoint URL; repeat for every cluster member (env: comma-separated)' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l prefix -d 'Global key prefix, joined before each resource\'s prefix' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l username -d 'etcd username; setting it turns authentication on' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l password-file -d 'File holding the etcd password' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l ca-file -d 'PEM bundle of the CA that signs etcd\'s certificates' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l cert-file -d 'PEM client certificate' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l key-file -d 'PEM client key' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l log-level -d 'Log level: error, warn, info, debug, trace, or a directive list such as "warn,reconfd::etcd=debug" [default: info, or log_level in the config file]' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l log-target -d 'Where logs go: journald (with structured fields), stderr, or auto (journald when stderr is the journal)' -r -f -a "auto\t'journald when `JOURNAL_STREAM` says stderr is the journal, else stderr'
journald\t'The journal\'s native protocol, with structured fields'
stderr\t'Standard error'"
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l log-format -d 'Format of stderr lines' -r -f -a "text\t'One human-readable line per event'
json\t'One JSON object per event'"
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l metrics-listen -d 'Serve /metrics, /healthz and /readyz on ADDR:PORT (e.g. 127.0.0.1:9612) or an absolute unix socket path [default: off, or metrics.listen in the config file]' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l control-socket -d 'The control socket `reconfd status` talks to [default: /run/reconfd/control.sock, or control.socket in the config file]' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -l noop -d 'Follow etcd and show what would change (a diff) and run check_cmd, but write and reload nothing'
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c reconfd -n "__fish_reconfd_using_subcommand run" -s V -l version -d 'Print version'
complete -c reconfd -n "__fish_reconfd_using_subcommand status" -l config -d 'The daemon\'s config file, for control.socket (a missing default file means the default socket)' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand status" -l control-socket -d 'The control socket [default: control.socket of the config, else /run/reconfd/control.sock]' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand status" -l instance -d 'The socket of the instance reconfd@NAME (/run/reconfd-NAME/control.sock)' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand status" -l json -d 'Print JSON (one object) instead of the table'
complete -c reconfd -n "__fish_reconfd_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c reconfd -n "__fish_reconfd_using_subcommand status" -s V -l version -d 'Print version'
complete -c reconfd -n "__fish_reconfd_using_subcommand approve" -l config -d 'The daemon\'s config file, for control.socket (a missing default file means the default socket)' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand approve" -l control-socket -d 'The control socket [default: control.socket of the config, else /run/reconfd/control.sock]' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand approve" -l instance -d 'The socket of the instance reconfd@NAME (/run/reconfd-NAME/control.sock)' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand approve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c reconfd -n "__fish_reconfd_using_subcommand approve" -s V -l version -d 'Print version'
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -l config -d 'Daemon config file (a missing default file means built-in defaults)' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -l confdir -d 'Directory holding conf.d/ and templates/ [default: /etc/reconfd]' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -l endpoint -d 'etcd endpoint URL; repeat for every cluster member (env: comma-separated)' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -l prefix -d 'Global key prefix, joined before each resource\'s prefix' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -l username -d 'etcd username; setting it turns authentication on' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -l password-file -d 'File holding the etcd password' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -l ca-file -d 'PEM bundle of the CA that signs etcd\'s certificates' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -l cert-file -d 'PEM client certificate' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -l key-file -d 'PEM client key' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -l log-level -d 'Log level: error, warn, info, debug, trace, or a directive list such as "warn,reconfd::etcd=debug" [default: info, or log_level in the config file]' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -l log-target -d 'Where logs go: journald (with structured fields), stderr, or auto (journald when stderr is the journal)' -r -f -a "auto\t'journald when `JOURNAL_STREAM` says stderr is the journal, else stderr'
journald\t'The journal\'s native protocol, with structured fields'
stderr\t'Standard error'"
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -l log-format -d 'Format of stderr lines' -r -f -a "text\t'One human-readable line per event'
json\t'One JSON object per event'"
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -l noop -d 'Show what would change (a diff) and run check_cmd, but write and reload nothing'
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -l force -d 'Install renders the guard (min_keys, max_shrink) would hold; without it a held resource counts as failed (exit 1) and its file stays as it is'
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c reconfd -n "__fish_reconfd_using_subcommand once" -s V -l version -d 'Print version'
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -l config -d 'Daemon config file (a missing default file means built-in defaults)' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -l confdir -d 'Directory holding conf.d/ and templates/ [default: /etc/reconfd]' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -l endpoint -d 'etcd endpoint URL; repeat for every cluster member (env: comma-separated)' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -l prefix -d 'Global key prefix, joined before each resource\'s prefix' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -l username -d 'etcd username; setting it turns authentication on' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -l password-file -d 'File holding the etcd password' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -l ca-file -d 'PEM bundle of the CA that signs etcd\'s certificates' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -l cert-file -d 'PEM client certificate' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -l key-file -d 'PEM client key' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -l log-level -d 'Log level: error, warn, info, debug, trace, or a directive list such as "warn,reconfd::etcd=debug" [default: info, or log_level in the config file]' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -l log-target -d 'Where logs go: journald (with structured fields), stderr, or auto (journald when stderr is the journal)' -r -f -a "auto\t'journald when `JOURNAL_STREAM` says stderr is the journal, else stderr'
journald\t'The journal\'s native protocol, with structured fields'
stderr\t'Standard error'"
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -l log-format -d 'Format of stderr lines' -r -f -a "text\t'One human-readable line per event'
json\t'One JSON object per event'"
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -l print-systemd-paths -d 'Print, instead of the summary, the systemd drop-in ([Service] ReadWritePaths=) that the sandboxed unit needs to write the destinations of the configured resources. Problems still go to stderr and set the exit code'
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c reconfd -n "__fish_reconfd_using_subcommand check" -s V -l version -d 'Print version'
complete -c reconfd -n "__fish_reconfd_using_subcommand credentials; and not __fish_seen_subcommand_from set delete" -l config -d 'Daemon config file, for etcd.username (a missing default file means built-in defaults)' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand credentials; and not __fish_seen_subcommand_from set delete" -l username -d 'etcd username whose password is stored [default: etcd.username of the config]' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand credentials; and not __fish_seen_subcommand_from set delete" -s h -l help -d 'Print help'
complete -c reconfd -n "__fish_reconfd_using_subcommand credentials; and not __fish_seen_subcommand_from set delete" -s V -l version -d 'Print version'
complete -c reconfd -n "__fish_reconfd_using_subcommand credentials; and not __fish_seen_subcommand_from set delete" -f -a "set" -d 'Read the password from standard input (without echo on a terminal) and store it; one trailing newline is not part of it'
complete -c reconfd -n "__fish_reconfd_using_subcommand credentials; and not __fish_seen_subcommand_from set delete" -f -a "delete" -d 'Remove the stored password'
complete -c reconfd -n "__fish_reconfd_using_subcommand credentials; and __fish_seen_subcommand_from set" -l config -d 'Daemon config file, for etcd.username (a missing default file means built-in defaults)' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand credentials; and __fish_seen_subcommand_from set" -l username -d 'etcd username whose password is stored [default: etcd.username of the config]' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand credentials; and __fish_seen_subcommand_from set" -s h -l help -d 'Print help'
complete -c reconfd -n "__fish_reconfd_using_subcommand credentials; and __fish_seen_subcommand_from set" -s V -l version -d 'Print version'
complete -c reconfd -n "__fish_reconfd_using_subcommand credentials; and __fish_seen_subcommand_from delete" -l config -d 'Daemon config file, for etcd.username (a missing default file means built-in defaults)' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand credentials; and __fish_seen_subcommand_from delete" -l username -d 'etcd username whose password is stored [default: etcd.username of the config]' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand credentials; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c reconfd -n "__fish_reconfd_using_subcommand credentials; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c reconfd -n "__fish_reconfd_using_subcommand render" -l template -d 'The template; `.tmpl` files are confd Go templates, anything else is Tera' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand render" -l data -d 'Flat mapping of full keys to string values, in JSON, TOML or YAML (by extension)' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand render" -l prefix -d 'Key prefix the template\'s keys are relative to, as a resource\'s global prefix' -r
complete -c reconfd -n "__fish_reconfd_using_subcommand render" -s h -l help -d 'Print help'
complete -c reconfd -n "__fish_reconfd_using_subcommand render" -s V -l version -d 'Print version'
complete -c reconfd -n "__fish_reconfd_using_subcommand migrate" -l from -d 'The confd directory, holding conf.d/ and templates/ (e.g. /etc/confd)' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand migrate" -l to -d 'The reconfd directory to write (e.g. /etc/reconfd)' -r -F
complete -c reconfd -n "__fish_reconfd_using_subcommand migrate" -l dry-run -d 'Print the report, write nothing'
complete -c reconfd -n "__fish_reconfd_using_subcommand migrate" -l force -d 'Overwrite existing files whose content differs'
complete -c reconfd -n "__fish_reconfd_using_subcommand migrate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c reconfd -n "__fish_reconfd_using_subcommand migrate" -s V -l version -d 'Print version'
