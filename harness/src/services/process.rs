//! Child processes the harness owns (database, Redis and GCS servers).
//!
//! They must never outlive the harness: each child gets PR_SET_PDEATHSIG, and
//! because Linux delivers that signal when the *thread* that forked the child
//! exits, every spawn happens on one dedicated thread that lives as long as
//! the process. An `atexit` hook additionally stops them and removes their
//! directories on a normal exit (test binaries end with `exit()`).

use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type SpawnJob = (Command, mpsc::Sender<std::io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnJob>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("harness-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // Keep the thread alive: its exit would kill every child.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawner thread");
        unsafe {
            libc::atexit(cleanup_at_exit);
        }
        Mutex::new(tx)
    })
}

/// Processes and directories to remove at exit even if their owner leaked.
static REGISTRY: Mutex<Vec<(u32, Option<PathBuf>)>> = Mutex::new(Vec::new());

extern "C" fn cleanup_at_exit() {
    if let Ok(mut reg) = REGISTRY.lock() {
        for (pid, dir) in reg.drain(..) {
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            if let Some(dir) = dir {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// A child process stopped (SIGTERM, then SIGKILL) and its directory removed on drop.
#[derive(Debug)]
pub struct OwnedProcess {
    child: Option<Child>,
    dir: Option<PathBuf>,
    stop_signal: i32,
}

impl OwnedProcess {
    pub fn spawn(
        mut cmd: Command,
        dir: Option<PathBuf>,
        stop_signal: i32,
    ) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt;
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let (tx, rx) = mpsc::channel();
        spawner()
            .lock()
            .unwrap()
            .send((cmd, tx))
            .map_err(|_| std::io::Error::other("spawner thread gone"))?;
        let child = rx
            .recv()
            .map_err(|_| std::io::Error::other("spawner thread gone"))??;
        REGISTRY.lock().unwrap().push((child.id(), dir.clone()));
        Ok(OwnedProcess {
            child: Some(child),
            dir,
            stop_signal,
        })
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Give up a process (one that failed to start, or a server being
    /// restarted) without removing its directory, which the next process
    /// reuses: the child is killed (SIGKILL) and reaped and its pid
    /// unregistered, so a later process that gets the same pid is never
    /// signalled on its behalf (as `mem::forget` would leave it).
    pub fn disarm(mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            let _ = child.kill();
            let _ = child.wait();
            REGISTRY.lock().unwrap().retain(|(p, _)| *p != pid);
        }
        self.dir = None;
    }

    /// Has the process exited already (e.g. failed to start)?
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for OwnedProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            unsafe {
                libc::kill(pid as i32, self.stop_signal);
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if std::time::Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
            REGISTRY.lock().unwrap().retain(|(p, _)| *p != pid);
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A loopback port that was free a moment ago, for a server started next (a
/// child process, a container; the caller retries on a clash).
///
/// Chosen below the kernel's ephemeral range: listeners bound to port 0 (fake
/// workers, in-process runners) and outgoing connections only ever get ports
/// inside it. A port taken from that range and released could be handed to
/// such a listener before the server binds it, and the server's readiness
/// probe would then talk to the wrong one (a parallel scenario's fake worker
/// recorded four `GET /` from moto's probe on CI). Ports this process handed
/// out recently are not handed out again.
pub fn free_port() -> std::io::Result<u16> {
    use rand::Rng;
    const FLOOR: u16 = 10_000;
    const REMEMBERED: usize = 4096;
    static HANDED_OUT: Mutex<std::collections::VecDeque<u16>> =
        Mutex::new(std::collections::VecDeque::new());
    let low = ephemeral_range().0;
    if low > FLOOR + 2 * REMEMBERED as u16 {
        let mut handed = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            let port = rng.gen_range(FLOOR..low);
            if handed.contains(&port) || std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            if handed.len() == REMEMBERED {
                handed.pop_front();
            }
            handed.push_back(port);
            return Ok(port);
        }
    }
    // No room below the range (or all of it busy): the kernel's choice.
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// The kernel's ephemeral port range (Linux's default when unreadable).
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// uid and gid of a system user, read from /etc/passwd.
pub fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

pub fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// A fresh directory for a server, under the system temp dir.
pub fn server_dir(prefix: &str) -> std::io::Result<PathBuf> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    Ok(dir.keep())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_lie_outside_the_range_port_zero_binds_use() {
        let (low, high) = ephemeral_range();
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
        for p in &ports {
            assert!(!(low..=high).contains(p), "{p} is in {low}..={high}");
        }
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
        // The clash it prevents: a listener on port 0 never gets one of them.
        let listeners: Vec<_> = (0..200)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        for l in &listeners {
            assert!(!ports.contains(&l.local_addr().unwrap().port()));
        }
    }

    #[test]
    fn a_disarmed_process_is_unregistered_and_keeps_its_directory() {
        let dir = server_dir("disarm-test").unwrap();
        let mut p =
            OwnedProcess::spawn(Command::new("true"), Some(dir.clone()), libc::SIGTERM).unwrap();
        let pid = p.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while p.exited().is_none() {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(REGISTRY.lock().unwrap().iter().any(|(q, _)| *q == pid));
        p.disarm();
        assert!(!REGISTRY.lock().unwrap().iter().any(|(q, _)| *q == pid));
        assert!(dir.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
