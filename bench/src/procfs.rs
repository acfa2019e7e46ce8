//! Small /proc readers used by `load` and `bench-run` (Linux only).

use std::fs;

/// Clock ticks per second for /proc/PID/stat utime/stime (`getconf CLK_TCK`, usually 100).
pub fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// utime + stime of a process (all threads), in clock ticks. `pid` may be "self".
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: skip past it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After "pid (comm) ", index 0 is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The first number of a /proc/PID/status field (e.g. "VmRSS" in kB, "Uid").
pub fn status_num(pid: &str, key: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// Soft limit on open files of this process, from /proc/self/limits.
pub fn nofile_soft_limit() -> Option<u64> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// Per-CPU counters from /proc/stat, in clock ticks.
#[derive(Clone, Debug, Default)]
pub struct CpuTimes {
    /// user + nice + system (time charged to processes).
    pub task: u64,
    /// irq + softirq (kernel work charged to no process; on loopback this is much of the
    /// TCP receive path, done on the *sending* core).
    pub irq: u64,
    /// steal (hypervisor) time.
    pub steal: u64,
    /// idle + iowait.
    pub idle: u64,
}

impl CpuTimes {
    /// Everything but idle.
    pub fn busy(&self) -> u64 {
        self.task + self.irq + self.steal
    }

    pub fn total(&self) -> u64 {
        self.busy() + self.idle
    }

    pub fn delta(&self, earlier: &Self) -> Self {
        Self {
            task: self.task.saturating_sub(earlier.task),
            irq: self.irq.saturating_sub(earlier.irq),
            steal: self.steal.saturating_sub(earlier.steal),
            idle: self.idle.saturating_sub(earlier.idle),
        }
    }
}

/// /proc/stat lines `cpuN`, indexed by N.
pub fn per_cpu_times() -> Vec<CpuTimes> {
    let Ok(stat) = fs::read_to_string("/proc/stat") else { return Vec::new() };
    let mut out = Vec::new();
    for line in stat.lines() {
        let mut f = line.split_whitespace();
        let Some(name) = f.next() else { continue };
        let Some(idx) = name.strip_prefix("cpu").and_then(|n| n.parse::<usize>().ok()) else {
            continue;
        };
        let v: Vec<u64> = f.filter_map(|x| x.parse().ok()).collect();
        let g = |i: usize| v.get(i).copied().unwrap_or(0);
        if out.len() <= idx {
            out.resize(idx + 1, CpuTimes::default());
        }
        out[idx] = CpuTimes {
            task: g(0) + g(1) + g(2),
            irq: g(5) + g(6),
            steal: g(7),
            idle: g(3) + g(4),
        };
    }
    out
}
