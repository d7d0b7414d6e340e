//! Running a resource's `check_cmd` and `reload_cmd`: placeholder substitution, `/bin/sh -c`
//! in a process group of its own, captured (and capped) output, and a timeout that kills the
//! whole group.
//!
//! It owns the child processes and nothing else: it does not know about staged files or
//! destinations beyond the two paths it substitutes, and it decides nothing about what a
//! failure means for the install (that is the parent module's job).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How much of a command's combined stdout and stderr is kept. The rest is read and
/// dropped, so a chatty command neither blocks on a full pipe nor fills our memory.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// How long to keep reading output after the shell has exited. A daemon the command
/// started outside its process group may hold the pipe open forever; we do not wait for it.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// A `/bin/sh -c` command line from a resource, with confd's `{{.src}}` and `{{.dest}}`
/// placeholders (spaces inside the braces allowed: `{{ .src }}`).
///
/// A newtype rather than a `String` so that a command is never split on spaces or run
/// without its placeholders filled in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShellCommand(String);

impl ShellCommand {
    /// Wraps a command line as written in the resource.
    pub fn new(line: impl Into<String>) -> Self {
        Self(line.into())
    }

    /// The command line as written, placeholders included.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The command line with `{{.src}}` and `{{.dest}}` replaced.
    ///
    /// Paths made only of characters the shell leaves alone are inserted as they are (as
    /// confd does, so `'{{.src}}'` in a command keeps working); any other path is single-quoted
    /// so a space or `$` in a file name cannot change the command. Other `{{…}}` text is kept.
    pub fn render(&self, src: &Path, dest: &Path) -> OsString {
        let line = self.0.as_bytes();
        let mut out = Vec::with_capacity(line.len());
        let mut i = 0;
        while i < line.len() {
            if let Some((path, len)) = placeholder(&line[i..], src, dest) {
                push_shell_word(&mut out, path.as_os_str().as_bytes());
                i += len;
            } else {
                out.push(line[i]);
                i += 1;
            }
        }
        OsString::from_vec(out)
    }
}

impl fmt::Display for ShellCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for ShellCommand {
    fn from(line: String) -> Self {
        Self(line)
    }
}

impl From<&str> for ShellCommand {
    fn from(line: &str) -> Self {
        Self(line.to_owned())
    }
}

/// If `s` starts with `{{.src}}` or `{{.dest}}` (spaces allowed inside the braces), the path
/// it stands for and the placeholder's length.
fn placeholder<'p>(s: &[u8], src: &'p Path, dest: &'p Path) -> Option<(&'p Path, usize)> {
    let rest = s.strip_prefix(b"{{")?;
    let skip = |s: &[u8]| s.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
    let lead = skip(rest);
    let rest = &rest[lead..];
    let (path, name_len) = if rest.starts_with(b".src") {
        (src, 4)
    } else if rest.starts_with(b".dest") {
        (dest, 5)
    } else {
        return None;
    };
    let rest = &rest[name_len..];
    let trail = skip(rest);
    rest[trail..]
        .starts_with(b"}}")
        .then_some((path, 2 + lead + name_len + trail + 2))
}

/// Appends `word` to a shell command line, quoting it only when the shell would otherwise
/// treat some of its characters specially.
fn push_shell_word(out: &mut Vec<u8>, word: &[u8]) {
    let plain = |b: &u8| b.is_ascii_alphanumeric() || b"/._-+,:=@%".contains(b);
    if !word.is_empty() && word.iter().all(plain) {
        out.extend_from_slice(word);
        return;
    }
    out.push(b'\'');
    for &b in word {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
}

/// What a command printed on stdout and stderr together, in the order it wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// The output, decoded lossily, at most [`OUTPUT_LIMIT`] bytes of it.
    pub text: String,
    /// Whether the command printed more than [`OUTPUT_LIMIT`] bytes.
    pub truncated: bool,
}

/// Shows the output for a log line or an error message: trimmed, `(no output)` when empty.
impl fmt::Display for CommandOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.text.trim_end();
        if text.is_empty() {
            f.write_str("(no output)")?;
        } else {
            f.write_str(text)?;
        }
        if self.truncated {
            write!(f, " [output truncated at {} KiB]", OUTPUT_LIMIT / 1024)?;
        }
        Ok(())
    }
}

/// Why a command did not succeed. `command` is the command line as run, placeholders filled.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// `/bin/sh` could not be started (or its output pipe could not be made).
    #[error("{command:?} could not be started: {source}")]
    Spawn {
        /// The command line as run.
        command: String,
        /// The I/O error.
        source: io::Error,
    },
    /// Waiting for the shell failed; its process group has been killed.
    #[error("{command:?}: cannot wait for the command: {source}")]
    Wait {
        /// The command line as run.
        command: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The command exited non-zero or was killed by a signal.
    #[error("{command:?} failed ({}): {output}", describe_status(status))]
    Failed {
        /// The command line as run.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// What it printed.
        output: CommandOutput,
    },
    /// The command ran longer than its timeout; its whole process group was killed.
    #[error("{command:?} timed out after {timeout:?} and was killed: {output}")]
    TimedOut {
        /// The command line as run.
        command: String,
        /// The timeout it exceeded.
        timeout: Duration,
        /// What it printed before it was killed.
        output: CommandOutput,
    },
}

impl CommandError {
    /// The command line as run.
    pub fn command(&self) -> &str {
        match self {
            Self::Spawn { command, .. }
            | Self::Wait { command, .. }
            | Self::Failed { command, .. }
            | Self::TimedOut { command, .. } => command,
        }
    }

    /// What the command printed, when it got as far as running.
    pub fn output(&self) -> Option<&CommandOutput> {
        match self {
            Self::Failed { output, .. } | Self::TimedOut { output, .. } => Some(output),
            Self::Spawn { .. } | Self::Wait { .. } => None,
        }
    }
}

/// `exit status 1` or `killed by signal 9`, the way an operator reads it.
fn describe_status(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(name) => format!("killed by signal {signal} ({name})"),
            Err(_) => format!("killed by signal {signal}"),
        },
        (None, None) => status.to_string(),
    }
}

/// Runs `cmd` through `/bin/sh -c` with `{{.src}}` = `src` and `{{.dest}}` = `dest`.
///
/// The command also gets `RECONFD_SRC` and `RECONFD_DEST` in its environment (the safe way to
/// use paths in scripts), stdin from `/dev/null`, and stdout and stderr into one captured
/// pipe. It runs in a process group of its own so that on timeout, or if this future is
/// dropped, the shell and everything it started in the group get SIGKILL, not just the shell.
/// Only a zero exit status is success.
pub async fn run(
    cmd: &ShellCommand,
    src: &Path,
    dest: &Path,
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let line = cmd.render(src, dest);
    let command = line.to_string_lossy().into_owned();
    let (mut child, mut reader) =
        spawn_shell(&line, src, dest).map_err(|source| CommandError::Spawn {
            command: command.clone(),
            source,
        })?;
    // Declared after `child` so it drops first: the group is killed while the shell is not yet
    // reaped, so its pid (the group id) cannot have been reused.
    let mut group = GroupKiller::new(&child);
    let (waited, output) = wait_capturing(&mut child, &mut reader, &mut group, timeout).await;
    match waited {
        None => Err(CommandError::TimedOut {
            command,
            timeout,
            output,
        }),
        Some(Err(source)) => {
            group.kill();
            Err(CommandError::Wait { command, source })
        }
        Some(Ok(status)) => {
            // A command that exited on its own may leave background jobs (a daemon it
            // started); those are not ours to kill.
            group.disarm();
            if status.success() {
                Ok(output)
            } else {
                Err(CommandError::Failed {
                    command,
                    status,
                    output,
                })
            }
        }
    }
}

/// Starts `/bin/sh -c line` in a process group of its own, stdout and stderr into one pipe
/// whose read end is returned.
fn spawn_shell(line: &OsStr, src: &Path, dest: &Path) -> io::Result<(Child, pipe::Receiver)> {
    // One pipe for both streams keeps their relative order, as confd's CombinedOutput does.
    // O_CLOEXEC keeps our end (and other threads' spawns) from inheriting the pipe.
    let (reader, writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let reader = pipe::Receiver::from_owned_fd(reader)?;
    let writer2 = writer.try_clone()?;
    let mut sh = Command::new("/bin/sh");
    sh.arg("-c")
        .arg(line)
        // The etcd password must never reach a command.
        .env_remove("RECONFD_ETCD_PASSWORD")
        .env("RECONFD_SRC", src)
        .env("RECONFD_DEST", dest)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2))
        .process_group(0)
        .kill_on_drop(true);
    let child = sh.spawn()?;
    // `sh` is dropped here, closing our copies of the write end: EOF on the pipe then
    // means every process holding it has exited.
    Ok((child, reader))
}

/// Waits for the shell while capturing its output, at most `timeout`; on timeout kills
/// its group and returns `None` for the status. After the shell exits, reading goes on for
/// at most [`DRAIN_GRACE`].
async fn wait_capturing(
    child: &mut Child,
    reader: &mut pipe::Receiver,
    group: &mut GroupKiller,
    timeout: Duration,
) -> (Option<io::Result<ExitStatus>>, CommandOutput) {
    let mut output = Capture::default();
    let deadline = Instant::now() + timeout;
    let waited = {
        let read = output.fill(reader);
        tokio::pin!(read);
        let mut read_done = false;
        let waited = loop {
            tokio::select! {
                () = &mut read, if !read_done => read_done = true,
                status = child.wait() => break Some(status),
                () = tokio::time::sleep_until(deadline) => break None,
            }
        };
        if waited.is_none() {
            group.kill();
            // The shell got SIGKILL; reap it so it does not linger as a zombie.
            let _ = child.wait().await;
        }
        if !read_done {
            let _ = tokio::time::timeout(DRAIN_GRACE, &mut read).await;
        }
        waited
    };
    (waited, output.finish())
}

/// Runs a hook for a resource and logs its output: debug on success, warn on failure. The
/// error itself is for the caller to report.
pub(crate) async fn run_logged(
    hook: &'static str,
    cmd: &ShellCommand,
    src: &Path,
    dest: &Path,
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    let result = run(cmd, src, dest, timeout).await;
    match &result {
        Ok(output) => tracing::debug!(
            hook,
            command = %cmd.render(src, dest).to_string_lossy(),
            output = %output,
            "{hook} succeeded"
        ),
        Err(error) => tracing::warn!(
            message_id = if hook == "check_cmd" { crate::logging::CHECK_FAILED } else { crate::logging::RELOAD_FAILED },
            hook,
            command = error.command(),
            output = %error.output().map(ToString::to_string).unwrap_or_default(),
            "{hook} failed"
        ),
    }
    result
}

/// Kills a child's process group with SIGKILL when asked, or when dropped while armed (the
/// future running the command was cancelled).
struct GroupKiller {
    /// The group id (the shell's pid, as it leads its own group); `None` once disarmed.
    pgid: Option<Pid>,
}

impl GroupKiller {
    fn new(child: &Child) -> Self {
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        Self { pgid }
    }

    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // ESRCH: the whole group is already gone, which is what we want.
            if let Err(error) = killpg(pgid, Signal::SIGKILL) {
                if error != nix::errno::Errno::ESRCH {
                    tracing::warn!(pgid = pgid.as_raw(), %error, "cannot kill command's process group");
                }
            }
        }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }
}

impl Drop for GroupKiller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Output being collected, capped at [`OUTPUT_LIMIT`].
#[derive(Default)]
struct Capture {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Capture {
    /// Reads the pipe to EOF, keeping what fits. Read errors end the capture: the output is
    /// for people, and losing its tail must not fail the command.
    async fn fill(&mut self, reader: &mut pipe::Receiver) {
        // On the heap: on the stack it would sit in every future that runs a command.
        let mut buf = vec![0u8; 8192];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) => return,
                Ok(n) => self.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    tracing::debug!(%error, "cannot read command output");
                    return;
                }
            }
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        let room = OUTPUT_LIMIT - self.bytes.len();
        if chunk.len() > room {
            self.truncated = true;
        }
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    fn finish(self) -> CommandOutput {
        CommandOutput {
            text: String::from_utf8_lossy(&self.bytes).into_owned(),
            truncated: self.truncated,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::path::PathBuf;

    fn render(line: &str, src: &str, dest: &str) -> String {
        ShellCommand::new(line)
            .render(Path::new(src), Path::new(dest))
            .into_string()
            .unwrap()
    }

    #[test]
    fn placeholders_are_replaced_with_or_without_spaces() {
        assert_eq!(
            render(
                "nginx -t -c {{.src}} && cp {{ .src }} {{  .dest}}",
                "/e/.a.r-1",
                "/e/a"
            ),
            "nginx -t -c /e/.a.r-1 && cp /e/.a.r-1 /e/a"
        );
    }

    #[test]
    fn other_braces_are_kept() {
        assert_eq!(
            render("echo {{.other}} {{ .src x}} {{", "/s", "/d"),
            "echo {{.other}} {{ .src x}} {{"
        );
    }

    #[test]
    fn unsafe_paths_are_quoted() {
        assert_eq!(
            render("cat {{.src}}", "/a b/it's", "/d"),
            "cat '/a b/it'\\''s'"
        );
    }

    #[test]
    fn output_is_capped() {
        let mut c = Capture::default();
        c.push(&vec![b'x'; OUTPUT_LIMIT - 1]);
        c.push(b"yz");
        let out = c.finish();
        assert_eq!(out.text.len(), OUTPUT_LIMIT);
        assert!(out.truncated);
        assert!(out.to_string().ends_with("[output truncated at 64 KiB]"));
    }

    #[tokio::test]
    async fn captures_stdout_and_stderr_in_order_and_sets_env() {
        let cmd = ShellCommand::new("echo out; echo err >&2; echo \"$RECONFD_SRC $RECONFD_DEST\"");
        let out = run(
            &cmd,
            Path::new("/s"),
            Path::new("/d"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(out.text, "out\nerr\n/s /d\n");
        assert!(!out.truncated);
    }

    #[tokio::test]
    async fn stdin_is_null() {
        let cmd = ShellCommand::new("cat");
        let out = run(
            &cmd,
            Path::new("/s"),
            Path::new("/d"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(out.text, "");
    }

    #[tokio::test]
    async fn chatty_command_is_capped_not_blocked() {
        let cmd = ShellCommand::new("head -c 1000000 /dev/zero | tr '\\0' x");
        let out = run(
            &cmd,
            Path::new("/s"),
            Path::new("/d"),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(out.text.len(), OUTPUT_LIMIT);
        assert!(out.truncated);
    }

    #[tokio::test]
    async fn non_zero_exit_is_an_error_with_output() {
        let cmd = ShellCommand::new("echo bad config; exit 3");
        let err = run(
            &cmd,
            Path::new("/s"),
            Path::new("/d"),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(matches!(&err, CommandError::Failed { status, .. } if status.code() == Some(3)));
        assert_eq!(
            err.to_string(),
            "\"echo bad config; exit 3\" failed (exit status 3): bad config"
        );
    }

    /// Whether `pid` is still running (a zombie counts as gone).
    fn running(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
    }

    /// Waits (at most 30 s) until `path` holds `n` lines of pids; returns them.
    async fn wait_pids(path: &Path, n: usize) -> Vec<i32> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let pids: Vec<i32> = std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.parse().ok())
                .collect();
            if pids.len() >= n {
                return pids;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the command never wrote its pids"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The command returns as soon as the shell exits, while its background job still holds
    /// the output pipe: the job is still running when `run` returns.
    #[tokio::test]
    async fn background_job_keeping_the_pipe_does_not_hang_success() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let cmd = ShellCommand::new(format!(
            "sleep 600 & echo $! > {}; echo started",
            pids.display()
        ));
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            run(
                &cmd,
                Path::new("/s"),
                Path::new("/d"),
                Duration::from_secs(600),
            ),
        )
        .await
        .expect("run waited for the background job")
        .unwrap();
        assert_eq!(out.text, "started\n");
        let job = wait_pids(&pids, 1).await[0];
        assert!(running(job), "the background job ended before run returned");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(job),
            nix::sys::signal::Signal::SIGKILL,
        );
    }

    /// Whether `pid` is gone, waiting for it at most 10 s. SIGKILL is delivered
    /// asynchronously, so a killed grandchild may take a moment to exit; a zombie awaiting its
    /// new parent counts as gone.
    pub(crate) fn gone_soon(pid: i32) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if !running(pid) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A command past its timeout is killed with its whole process group: `run` returns
    /// `TimedOut` with the output so far while the 600 s sleep would still run, and every
    /// process of the group is gone.
    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pids: PathBuf = dir.path().join("pids");
        let cmd = ShellCommand::new(format!(
            "sleep 600 & echo $! > {p}; echo $$ >> {p}; echo waiting; wait",
            p = pids.display()
        ));
        // The timeout is the subject: long enough for the shell to have written its pids and
        // its line on any machine, far shorter than the sleep.
        let err = tokio::time::timeout(
            Duration::from_secs(60),
            run(
                &cmd,
                Path::new("/s"),
                Path::new("/d"),
                Duration::from_secs(2),
            ),
        )
        .await
        .expect("run did not return after its timeout")
        .unwrap_err();
        let CommandError::TimedOut { output, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(output.text, "waiting\n");
        for pid in wait_pids(&pids, 2).await {
            assert!(gone_soon(pid), "process {pid} survived");
        }
    }

    /// Dropping the future (the actor cancelled mid-command) kills the group too. The
    /// future is dropped once the command has written its pids, not after a guessed delay.
    #[tokio::test]
    async fn dropping_the_future_kills_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let cmd = ShellCommand::new(format!(
            "echo $$ > {p}; sleep 600 & echo $! >> {p}; wait",
            p = pids.display()
        ));
        let running = run(
            &cmd,
            Path::new("/s"),
            Path::new("/d"),
            Duration::from_secs(600),
        );
        let written = tokio::select! {
            r = running => panic!("the command ended on its own: {r:?}"),
            pids = wait_pids(&pids, 2) => pids,
        };
        for pid in written {
            assert!(gone_soon(pid), "process {pid} survived");
        }
    }
}
