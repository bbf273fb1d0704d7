//! Certificate chain ordering for `--construct-pem-chain`, as the Go provider's `fetchCertChains`:
//! only key identifiers link certificates (never names). Certificate j is the parent of i when
//! i's AuthorityKeyIdentifier equals j's SubjectKeyIdentifier (absent equals empty, but a pair
//! where both are absent is skipped), the first such j wins. The leaf is the first certificate
//! that is nobody's parent; the chain is the walk from it through the parents.

use x509_parser::extensions::ParsedExtension;

use super::ContentError;

/// Logged by upstream when the walk does not reach every certificate; the input is then kept.
pub(crate) const INCOMPLETE_CHAIN_WARNING: &str = "certificate chain is not complete due to missing intermediate/root certificates in the cert from key vault";

/// Indices of `certs` (DER) ordered leaf → root, or `None` when the chain is incomplete (missing
/// link or several leaves) and the caller must keep the original order. An empty list is a
/// trivially complete chain.
pub(crate) fn order(certs: &[Vec<u8>]) -> Result<Option<Vec<usize>>, ContentError> {
    if certs.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let ids = certs
        .iter()
        .enumerate()
        .map(|(i, der)| KeyIds::of(i, der))
        .collect::<Result<Vec<_>, _>>()?;
    let n = ids.len();
    let mut parent = vec![None; n];
    let mut is_parent = vec![false; n];
    for (i, child) in ids.iter().enumerate() {
        if let Some(j) = (0..n).find(|&j| j != i && child.issued_by(&ids[j])) {
            parent[i] = Some(j);
            is_parent[j] = true;
        }
    }
    let leaf = (0..n)
        .find(|&i| !is_parent[i])
        .ok_or_else(|| ContentError("no leaf found".into()))?;
    let mut walk = Vec::new();
    let mut next = Some(leaf);
    while let Some(node) = next {
        if walk.len() == n {
            return Err(ContentError("constructing chain resulted in cycle".into()));
        }
        walk.push(node);
        next = parent[node];
    }
    Ok((walk.len() == n).then_some(walk))
}

/// AuthorityKeyIdentifier keyIdentifier and SubjectKeyIdentifier of one certificate.
struct KeyIds {
    authority: Option<Vec<u8>>,
    subject: Option<Vec<u8>>,
}

impl KeyIds {
    fn of(index: usize, der: &[u8]) -> Result<Self, ContentError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|err| {
            ContentError(format!(
                "certificate {} of the chain cannot be parsed: {err}",
                index + 1
            ))
        })?;
        let mut ids = Self {
            authority: None,
            subject: None,
        };
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    ids.authority = aki.key_identifier.as_ref().map(|k| k.0.to_vec());
                }
                ParsedExtension::SubjectKeyIdentifier(ski) => ids.subject = Some(ski.0.to_vec()),
                _ => {}
            }
        }
        Ok(ids)
    }

    fn issued_by(&self, parent: &KeyIds) -> bool {
        if self.authority.is_none() && parent.subject.is_none() {
            return false;
        }
        self.authority.as_deref().unwrap_or_default()
            == parent.subject.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::pem;

    fn der(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/content/{name}.pem",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read(&path).unwrap();
        pem::decode_all(&text).remove(0).der
    }

    /// `order` over `names`, mapped back to names.
    fn ordered(names: &[&'static str]) -> Result<Option<Vec<&'static str>>, ContentError> {
        let certs: Vec<Vec<u8>> = names.iter().map(|n| der(n)).collect();
        Ok(order(&certs)?.map(|idx| idx.into_iter().map(|i| names[i]).collect()))
    }

    fn permutations(items: &[&'static str]) -> Vec<Vec<&'static str>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut out = Vec::new();
        for i in 0..items.len() {
            let mut rest = items.to_vec();
            let first = rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, first);
                out.push(tail);
            }
        }
        out
    }

    #[test]
    fn every_ordering_of_three_becomes_leaf_intermediate_root() {
        for leaf in ["leaf", "leaf-noski", "leaf-ec"] {
            let all = permutations(&[leaf, "inter", "root"]);
            assert_eq!(all.len(), 6);
            for input in all {
                assert_eq!(
                    ordered(&input).unwrap(),
                    Some(vec![leaf, "inter", "root"]),
                    "{input:?}"
                );
            }
        }
    }

    #[test]
    fn missing_link_or_several_leaves_is_incomplete() {
        assert_eq!(ordered(&["leaf", "root"]).unwrap(), None);
        assert_eq!(ordered(&["root", "leaf"]).unwrap(), None);
        assert_eq!(
            ordered(&["leaf", "leaf-ec", "inter", "root"]).unwrap(),
            None
        );
        assert_eq!(ordered(&["leaf"]).unwrap(), Some(vec!["leaf"]));
        assert_eq!(order(&[]).unwrap(), Some(vec![]));
    }

    #[test]
    fn cycles_and_no_leaf_are_errors() {
        let err = ordered(&["cycle-leaf", "cycle-a", "cycle-b"]).unwrap_err();
        assert_eq!(err.0, "constructing chain resulted in cycle");
        assert_eq!(
            ordered(&["cycle-a", "cycle-b"]).unwrap_err().0,
            "no leaf found"
        );
    }

    #[test]
    fn absent_identifier_equals_empty_unless_both_are_absent() {
        let ids = |authority: Option<&[u8]>, subject: Option<&[u8]>| KeyIds {
            authority: authority.map(<[u8]>::to_vec),
            subject: subject.map(<[u8]>::to_vec),
        };
        let child = |aki| ids(aki, None);
        let parent = |ski| ids(None, ski);
        assert!(!child(None).issued_by(&parent(None)));
        assert!(child(None).issued_by(&parent(Some(b""))));
        assert!(child(Some(b"")).issued_by(&parent(None)));
        assert!(child(Some(b"\x01")).issued_by(&parent(Some(b"\x01"))));
        assert!(!child(Some(b"\x01")).issued_by(&parent(Some(b"\x02"))));
    }

    #[test]
    fn unparsable_certificate_is_an_error() {
        let err = order(&[der("leaf"), b"test".to_vec()]).unwrap_err();
        assert!(
            err.0
                .starts_with("certificate 2 of the chain cannot be parsed"),
            "{}",
            err.0
        );
    }
}
