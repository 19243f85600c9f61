//! Subtree digests: how two nodes find the records on which they differ without listing all.

use super::*;

/// Subtree digests: how two nodes find the records on which they differ without listing all.
pub const DIGEST_BUCKETS: usize = 256;

pub(super) fn digest_bucket(id: &str) -> usize {
    use sha2::{Digest, Sha256};
    Sha256::digest(id.as_bytes())[0] as usize
}

pub(super) fn digest_value(id: &str, heads: &[u8]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(id.as_bytes());
    hasher.update(heads);
    let h = hasher.finalize();
    u64::from_le_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
}

impl Store {
    /// Every record this node holds that `peer` should hold too, with its heads hash.
    pub(super) fn shared_records(
        &self,
        peer: &RegionCode,
        policy: &RoutePolicy,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, kind, home, created_at, created_by, route, heads_hash, personal_claimed FROM records",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<Vec<u8>>>(6)?,
                r.get::<_, bool>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, kind, home, created_at, created_by, route, heads, personal_claimed) = row?;
            let header = header_from_columns(&id, &kind, &home, &created_at, &created_by)?;
            let hints = stored_hints(&header, &route, personal_claimed);
            if !holds(peer, &header.home, &hints, policy) {
                continue;
            }
            let heads = match heads {
                Some(h) => h,
                // Rows written before heads were hashed: hash them now.
                None => crate::store::heads_hash(&self.load_doc(&header.id)?.heads()),
            };
            out.push((id, heads));
        }
        Ok(out)
    }

    /// The digest of the records this node and `peer` should both hold.
    pub fn digest(&self, peer: &RegionCode, policy: &RoutePolicy) -> Result<Vec<u64>, StoreError> {
        let mut buckets = vec![0u64; DIGEST_BUCKETS];
        for (id, heads) in self.shared_records(peer, policy)? {
            buckets[digest_bucket(&id)] ^= digest_value(&id, &heads);
        }
        Ok(buckets)
    }

    /// The records behind the buckets marked in `differing`.
    pub fn digest_entries(
        &self,
        peer: &RegionCode,
        policy: &RoutePolicy,
        differing: &[bool],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Ok(self
            .shared_records(peer, policy)?
            .into_iter()
            .filter(|(id, _)| differing.get(digest_bucket(id)).copied().unwrap_or(false))
            .collect())
    }
}
