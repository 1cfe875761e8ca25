//! Linux plumbing shared by memfit's measurement (`memfit-measure`) and its guard
//! (`memfit-guard`): one home for each piece of kernel knowledge.
//!
//! * [`mountinfo`]: `/proc/self/mountinfo`, every octal escape decoded.
//! * [`cgroup`]: finding the memory controller (v2 or v1) and this process's place in it,
//!   reading a cgroup's memory files (usage, watermark, limit, events, stat, swap, pressure),
//!   and creating, filling, emptying and removing a cgroup of one's own.
//! * [`procfs`]: `/proc/PID/{status,stat,statm,cmdline}`, `/proc/meminfo`, process-tree walks.
//! * [`safe_write`]: writing a file in a directory someone else controls, as root, safely.
//! * [`netlink`]: a netlink socket bound for the kernel's messages.
//! * [`process`]: what a parent does for its children — the signal state a child gets before
//!   exec, reaping, decoding wait statuses.
//! * [`runtime_view`]: the Node runtime view's preload, its private directory and FIFO, and
//!   the bounded reading of what Node processes report through it.
//!
//! Not here: policy of any kind (what to sample, when to act, what to report). Those belong to
//! memfit-measure and memfit-guard. Depends on libc, memfit-core's vocabulary and serde_json
//! (the runtime view's report lines) only: the guard ships inside containers and its own
//! footprint is a feature.

pub mod cgroup;
pub mod mountinfo;
pub mod netlink;
pub mod process;
pub mod procfs;
pub mod runtime_view;
pub mod safe_write;

pub use memfit_core::CgroupVersion;
