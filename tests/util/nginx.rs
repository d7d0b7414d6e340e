//! A real nginx on loopback whose only server block is `site.conf` in a directory the test
//! names (the file reconfd renders), run in the foreground and killed on drop.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running nginx master.
pub struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    /// Where it listens (the rendered `site.conf` must listen there).
    pub port: u16,
}

impl Nginx {
    /// Whether nginx is installed where the tests expect it.
    pub fn available() -> bool {
        Path::new("/usr/sbin/nginx").exists()
    }

    /// Starts nginx including `<site_dir>/site.conf`, first written to answer `none`; waits
    /// (bounded) until it answers.
    pub fn start(site_dir: &Path) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        std::fs::write(site_dir.join("site.conf"), Self::site(port, "none")).unwrap();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("nginx.conf"),
            format!(
                "pid {d}/nginx.pid;\nerror_log {d}/error.log notice;\nevents {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n  uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n  include {}/site.conf;\n}}\n",
                site_dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start nginx");
        let n = Nginx { child, dir, port };
        super::wait_for(Duration::from_secs(20), "nginx to answer", || {
            n.get().filter(|b| b == "none\n")
        });
        n
    }

    /// A `site.conf` answering `body` on `port`.
    pub fn site(port: u16, body: &str) -> String {
        format!("server {{ listen 127.0.0.1:{port}; return 200 \"{body}\\n\"; }}\n")
    }

    /// Its main configuration file (for `nginx -s reload -c …`).
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }

    /// The body of `GET /`, `None` when it does not answer.
    pub fn get(&self) -> Option<String> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        out.split("\r\n\r\n").nth(1).map(str::to_owned)
    }

    /// nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// SIGTERM (the master stops its workers), then SIGKILL if it is still there after 5 s.
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
