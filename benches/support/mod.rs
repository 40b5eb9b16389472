//! What the load generators (`kms_load`, `obs_load`) share: the default credentials, endpoint
//! parsing, and CPU time read from `/proc`.

use hyper::header::HeaderValue;

/// Access key of the default account.
pub const ACCESS_KEY_ID: &str = "test";
/// Its secret.
pub const SECRET_ACCESS_KEY: &str = "test";
/// The region requests are signed for.
pub const REGION: &str = "us-east-1";

/// Where to send requests: `host:port` for the connection and the `Host` header.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port`.
    pub authority: String,
    /// The same, as a `Host` header value.
    pub host_header: HeaderValue,
}

/// The target of an `http://host[:port]` endpoint.
pub fn parse_endpoint(endpoint: &str) -> Result<Target, String> {
    let rest = endpoint
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// endpoints are supported, not {endpoint}"))?;
    let authority = rest.split('/').next().unwrap_or(rest).to_owned();
    let authority = if authority.contains(':') { authority } else { format!("{authority}:80") };
    let host_header = HeaderValue::from_str(&authority).map_err(|_| format!("bad endpoint {endpoint}"))?;
    Ok(Target { authority, host_header })
}

/// User + system CPU seconds from a `/proc/.../stat` file; with `children`, waited-for children too.
pub fn proc_stat_cpu(path: &str, children: bool) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the `(comm)`, which may contain spaces: state is field 3, utime 14, stime 15,
    // cutime 16, cstime 17.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let mut ticks = get(14)? + get(15)?;
    if children {
        ticks += get(16)? + get(17)?;
    }
    // sysconf(_SC_CLK_TCK) is 100 on every Linux this runs on.
    Some(ticks as f64 / 100.0)
}

/// CPU seconds of a whole process (all threads), or `None` if it cannot be read.
pub fn process_cpu(pid: u32) -> Option<f64> {
    proc_stat_cpu(&format!("/proc/{pid}/stat"), true)
}
