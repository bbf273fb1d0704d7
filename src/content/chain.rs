//! Certificate chain ordering for `--construct-pem-chain`, as the Go provider's `fetchCertChains`:
//! only key identifiers link certificates (never names). Certificate j is the parent of i when
//! i's AuthorityKeyIdentifier equals j's SubjectKeyIdentifier (absent equals empty, but a pair
//! where both are absent is skipped), the first such j wins. The leaf is the first certificate
//! that is nobody's parent; the chain is the walk from it through the parents.

use x509_parser::extensions::ParsedExtension;

use super::ContentError;

/// Logged by upstream when the walk does not reach every certificate; the input is then kept.
pub(crate) const INCOMPLETE_CHAIN_WARNING: &str =
    "certificate chain is not complete due to missing intermediate/root certificates in the cert from key vault";

/// Indices of `certs` (DER) ordered leaf → root, or `None` when the chain is incomplete (missing
/// link or several leaves) and the caller must keep the original order. An empty list is a
/// trivially complete chain.
pub(crate) fn order(certs: &[Vec<u8>]) -> Result<Option<Vec<usize>>, ContentError> {
    if certs.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let ids = certs.iter().enumerate().map(|(i, der)| KeyIds::of(i, der)).collect::<Result<Vec<_>, _>>()?;
    let n = ids.len();
    let mut parent = vec![None; n];
    let mut is_parent = vec![false; n];
    for (i, child) in ids.iter().enumerate() {
        if let Some(j) = (0..n).find(|&j| j != i && child.issued_by(&ids[j])) {
            parent[i] = Some(j);
            is_parent[j] = true;
        }
    }
    let leaf = (0..n).find(|&i| !is_parent[i]).ok_or_else(|| ContentError("no leaf found".into()))?;
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
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|err| ContentError(format!("certificate {} of the chain cannot be parsed: {err}", index + 1)))?;
        let mut ids = Self { authority: None, subject: None };
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
        self.authority.as_deref().unwrap_or_default() == parent.subject.as_deref().unwrap_or_default()
    }
}
