use crate::WireError;

/// What a worker says once its app has been imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// The worker's process id, as the worker sees it.
    pub pid: u32,
    /// The Python version, e.g. "3.11.7".
    pub python: String,
    /// How many requests the worker serves at once.
    pub threads: u32,
}

impl Hello {
    /// Parses a Hello payload: `pid \0 python version \0 threads`.
    pub fn parse(payload: &[u8]) -> Result<Self, WireError> {
        const BAD: fn(&'static str) -> WireError = |reason| WireError::Malformed {
            kind: "hello",
            reason,
        };
        let text = std::str::from_utf8(payload).map_err(|_| BAD("not UTF-8"))?;
        let mut parts = text.split('\0');
        let pid = parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or(BAD("bad pid"))?;
        let python = parts.next().ok_or(BAD("no python version"))?.to_owned();
        let threads = parts
            .next()
            .and_then(|t| t.parse().ok())
            .filter(|&t| t >= 1)
            .ok_or(BAD("bad thread count"))?;
        Ok(Hello {
            pid,
            python,
            threads,
        })
    }

    /// The payload for this Hello (used by tests and helper workers).
    pub fn encode(&self) -> Vec<u8> {
        format!("{}\0{}\0{}", self.pid, self.python, self.threads).into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trips() {
        let hello = Hello {
            pid: 42,
            python: "3.11.7".into(),
            threads: 4,
        };
        assert_eq!(Hello::parse(&hello.encode()), Ok(hello));
    }

    #[test]
    fn a_hello_without_threads_is_malformed() {
        assert!(Hello::parse(b"42\x003.11").is_err());
        assert!(Hello::parse(b"x\x003.11\x001").is_err());
        assert!(Hello::parse(b"42\x003.11\x000").is_err());
        assert!(Hello::parse(&[0xff, 0xfe]).is_err());
    }
}
