/// The cgroup version of a machine's memory controller. It decides which files hold a
/// container's limit and watermark, and whether older Node lines see the limit at all
/// (libuv reads cgroup v2 limits from 1.45, Node 20.3.0: nodejs/node#47259).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}
