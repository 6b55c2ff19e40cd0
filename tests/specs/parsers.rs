//! Property tests: arbitrary input to the token-response parser never panics, and well-formed
//! input round-trips (the JWT `exp` decoder's own are unit tests in `src/token.rs`).

use proptest::prelude::*;
use tower_token_auth::token::TokenSet;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn token_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = TokenSet::from_json(&bytes);
    }

    #[test]
    fn token_parser_never_panics_on_json_fields(
        access in json_value(),
        expires in json_value(),
        refresh_expires in json_value(),
        token_type in json_value(),
        refresh in json_value(),
    ) {
        let body = serde_json::json!({
            "access_token": access,
            "expires_in": expires,
            "refresh_expires_in": refresh_expires,
            "token_type": token_type,
            "refresh_token": refresh,
        });
        if let Ok(tokens) = TokenSet::from_json(body.to_string().as_bytes()) {
            prop_assert_eq!(Some(tokens.access_token().expose()), access.as_str());
        }
    }

    #[test]
    fn token_parser_reads_what_it_is_given(access in "[A-Za-z0-9._~+/-]{1,200}", secs in 1u32..=u32::MAX) {
        let body = serde_json::json!({ "access_token": access, "expires_in": secs, "token_type": "Bearer" });
        let tokens = TokenSet::from_json(body.to_string().as_bytes()).unwrap();
        prop_assert_eq!(tokens.access_token().expose(), access.as_str());
        // Lifetimes are clamped to ten years, so that instant arithmetic cannot overflow.
        let ten_years = std::time::Duration::from_secs(10 * 365 * 24 * 60 * 60);
        let expected = std::time::Duration::from_secs(secs.into()).min(ten_years);
        prop_assert_eq!(tokens.expires_in(), Some(expected));
    }
}
