//! Distinguished names for `tls_client_auth_subject_dn` (RFC 8705 2.1.2): the registered
//! subject, a string in RFC 4514's form (`CN=orders,O=Example Corp,C=NL`), against the subject
//! of the certificate a connection presented.
//!
//! Both sides become the same list: relative distinguished names in the certificate's order
//! (RFC 4514 writes them last first), each a set of attribute types (the short names, `CN`,
//! `O`, `OU`, `C`, `L`, `ST`, `DC`, …, or the dotted OID) with their values. Types compare
//! without regard to case, and so do values (`caseIgnoreMatch`, what the directory string
//! attributes match by); the order of attributes inside one multi-valued RDN does not count.

use x509_parser::objects::{oid2abbrev, oid_registry};

/// A distinguished name: its RDNs in the certificate's order, each a sorted list of
/// (upper-case type, lower-case value).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Dn(Vec<Vec<(String, String)>>);

impl Dn {
    /// Reads an RFC 4514 string; `None` when it is none (an RDN without `=`, an empty type, a
    /// dangling escape).
    pub(super) fn parse(text: &str) -> Option<Self> {
        let mut rdns = Vec::new();
        for rdn in split_unescaped(text, ',')? {
            let mut set = Vec::new();
            for pair in split_unescaped(&rdn, '+')? {
                let (kind, value) = pair.split_once('=')?;
                let kind = kind.trim();
                if kind.is_empty() {
                    return None;
                }
                set.push((
                    kind.to_ascii_uppercase(),
                    unescape(value.trim())?.to_lowercase(),
                ));
            }
            set.sort();
            rdns.push(set);
        }
        // RFC 4514 2.1: the last RDN of the sequence is written first.
        rdns.reverse();
        Some(Self(rdns))
    }

    /// The subject of the DER certificate `der`; `None` when it cannot be read or holds a value
    /// that is no string.
    pub(super) fn subject_of(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut rdns = Vec::new();
        for rdn in cert.subject().iter() {
            let mut set = Vec::new();
            for attribute in rdn.iter() {
                let oid = attribute.attr_type();
                let kind = match oid2abbrev(oid, oid_registry()) {
                    Ok(abbrev) => abbrev.to_ascii_uppercase(),
                    Err(_) => oid.to_id_string(),
                };
                set.push((kind, attribute.as_str().ok()?.to_lowercase()));
            }
            set.sort();
            rdns.push(set);
        }
        Some(Self(rdns))
    }
}

/// `text` split at each `separator` that no backslash escapes, escapes kept; `None` when
/// `text` ends inside an escape.
fn split_unescaped(text: &str, separator: char) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut part = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                part.push(c);
                part.push(chars.next()?);
            }
            c if c == separator => parts.push(std::mem::take(&mut part)),
            c => part.push(c),
        }
    }
    parts.push(part);
    Some(parts)
}

/// An attribute value with its escapes resolved: `\,` and the like, and `\XX` hex pairs (the
/// bytes of UTF-8).
fn unescape(value: &str) -> Option<String> {
    let mut bytes = Vec::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let next = chars.next()?;
        match next.to_digit(16) {
            Some(high) => {
                let low = chars.next()?.to_digit(16)?;
                bytes.push(u8::try_from(high * 16 + low).ok()?);
            }
            None => {
                let mut buf = [0; 4];
                bytes.extend_from_slice(next.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(names: &[(rcgen::DnType, &str)]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in names {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_registered_string_matches_the_certificate_subject_it_names() {
        let der = certificate(&[
            (rcgen::DnType::CountryName, "NL"),
            (rcgen::DnType::OrganizationName, "Example, Corp"),
            (rcgen::DnType::CommonName, "orders"),
        ]);
        let subject = Dn::subject_of(&der).unwrap();
        for registered in [
            r"CN=orders,O=Example\, Corp,C=NL",
            r"cn=ORDERS, o=example\2C corp, c=nl",
        ] {
            assert_eq!(
                Dn::parse(registered).as_ref(),
                Some(&subject),
                "{registered}"
            );
        }
        for other in [
            r"CN=orders,O=Example\, Corp",
            r"C=NL,O=Example\, Corp,CN=orders",
            r"CN=billing,O=Example\, Corp,C=NL",
        ] {
            assert_ne!(Dn::parse(other).as_ref(), Some(&subject), "{other}");
        }
    }

    #[test]
    fn strings_that_are_no_distinguished_name_are_refused() {
        for bad in ["orders", "CN=orders,", "=orders", r"CN=orders\", r"CN=\4"] {
            assert_eq!(Dn::parse(bad), None, "{bad}");
        }
    }
}
