//! The simulator's state machine: a tiny key-value map whose commands and snapshots have
//! a trivial encoding. Commands carry the client and operation that issued them.

use std::collections::BTreeMap;

/// A write command as stored in a log entry: `client op key value`, space separated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Put {
    pub client: u64,
    pub op: u64,
    pub key: String,
    pub value: String,
}

impl Put {
    pub fn encode(&self) -> Vec<u8> {
        format!("{} {} {} {}", self.client, self.op, self.key, self.value).into_bytes()
    }

    pub fn decode(data: &[u8]) -> Option<Put> {
        let s = std::str::from_utf8(data).ok()?;
        let mut it = s.split(' ');
        let put = Put {
            client: it.next()?.parse().ok()?,
            op: it.next()?.parse().ok()?,
            key: it.next()?.to_string(),
            value: it.next()?.to_string(),
        };
        it.next().is_none().then_some(put)
    }
}

/// The replicated map and the index it reflects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kv {
    pub map: BTreeMap<String, String>,
    pub applied: u64,
}

impl Kv {
    pub fn apply(&mut self, index: u64, data: &[u8]) {
        if let Some(p) = Put::decode(data) {
            self.map.insert(p.key, p.value);
        }
        self.applied = index;
    }

    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = format!("{}\n", self.applied);
        for (k, v) in &self.map {
            out.push_str(&format!("{k} {v}\n"));
        }
        out.into_bytes()
    }

    pub fn restore(data: &[u8]) -> Kv {
        let s = String::from_utf8_lossy(data);
        let mut lines = s.lines();
        let applied = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
        let map = lines
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Kv { map, applied }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_snapshot_round_trip() {
        let p = Put {
            client: 3,
            op: 9,
            key: "k1".into(),
            value: "c3-9".into(),
        };
        assert_eq!(Put::decode(&p.encode()), Some(p.clone()));
        assert_eq!(Put::decode(b"1 2 k"), None);
        let mut kv = Kv::default();
        kv.apply(4, &p.encode());
        assert_eq!(Kv::restore(&kv.snapshot()), kv);
    }
}
