//! Record ids: UUIDv4 as 32 lowercase hex characters (the original system's
//! format), assigned by the backends.

/// A fresh id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Whether `id` has the shape of an id (nothing else can name a record).
pub fn is_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let id = new_id();
        assert!(is_id(&id), "{id}");
        assert!(!is_id("not-an-id"));
        assert!(!is_id(&id.to_uppercase()));
        assert!(!is_id(&format!("{id}0")));
    }
}
