//! A sweep owns its trial processes: each runs in its own process group, gets SIGTERM when the
//! sweep dies however it dies (Linux's parent-death signal), and SIGTERM / SIGINT sent to the
//! sweep is forwarded to every running trial, which the sweep then waits for before it stops.
//! So no trial trains on as an orphan beside the one a re-run of the sweep resumes.

use std::io::Read;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// The signal (SIGTERM or SIGINT) the sweep received; 0 while none.
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// How often a waiting worker checks whether its trial ended or a stop was asked for.
const POLL: Duration = Duration::from_millis(50);

/// The signal that asked the sweep to stop, if one did.
pub fn stop_requested() -> Option<i32> {
    match STOP_SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Catches SIGTERM and SIGINT for the rest of the process: they set the stop flag that running
/// trials are stopped by and no new trial starts after.
pub fn catch_stop_signals() {
    #[cfg(unix)]
    {
        extern "C" fn on_signal(signal: libc::c_int) {
            STOP_SIGNAL.store(signal, Ordering::SeqCst);
        }
        for signal in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
                libc::sigemptyset(&mut action.sa_mask);
                action.sa_flags = libc::SA_RESTART;
                libc::sigaction(signal, &action, std::ptr::null_mut());
            }
        }
    }
}

/// Makes `cmd`'s process the leader of a new process group and, on Linux, asks the kernel to
/// send it SIGTERM when the thread that started it (a sweep worker, alive while the trial
/// runs) ends, including by SIGKILL of the sweep.
pub fn own(cmd: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        #[cfg(target_os = "linux")]
        // SAFETY: getpid is async-signal-safe; reading it before fork is plain.
        let parent = unsafe { libc::getpid() };
        // SAFETY: only async-signal-safe calls (setpgid, prctl, getppid, _exit) run between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                #[cfg(target_os = "linux")]
                {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The sweep died between fork and prctl: the signal will never come.
                    if libc::getppid() != parent {
                        libc::_exit(1);
                    }
                }
                Ok(())
            });
        }
    }
}

/// What [`wait`] collects from a trial.
pub struct Ended {
    /// How it exited.
    pub status: ExitStatus,
    /// Its standard output.
    pub stdout: Vec<u8>,
    /// The stop signal forwarded to it, if it was stopped.
    pub stopped_by: Option<i32>,
}

/// Waits for a trial started with [`own`] (stdout piped), forwarding a stop signal to its
/// process group as soon as one arrives.
pub fn wait(mut child: Child) -> std::io::Result<Ended> {
    let mut pipe = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(p) = pipe.as_mut() {
            let _ = p.read_to_end(&mut out);
        }
        out
    });
    let mut stopped_by = None;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if stopped_by.is_none()
            && let Some(signal) = stop_requested()
        {
            forward(&child, signal);
            stopped_by = Some(signal);
        }
        std::thread::sleep(POLL);
    };
    let stdout = reader.join().unwrap_or_default();
    Ok(Ended { status, stdout, stopped_by })
}

/// Sends `signal` to the trial's process group.
fn forward(child: &Child, signal: i32) {
    #[cfg(unix)]
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory effects; the group is the child's own (see `own`).
        unsafe {
            libc::kill(-pid, signal);
        }
    }
    #[cfg(not(unix))]
    let _ = (child, signal);
}
