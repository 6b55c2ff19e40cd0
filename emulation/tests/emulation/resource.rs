//! Watching and pacing the protected resource.

use crate::support::*;

#[tokio::test]
async fn held_requests_keep_the_answer_of_their_arrival_and_go_in_order() {
    let client = client();
    let emulation = start(Api::OAuth2).await;
    let (access, _) = login(&client, &emulation).await;
    let bearer = format!("Bearer {access}");
    emulation.hold_resource_requests(3);
    let mut held = Vec::new();
    for i in 0..3 {
        if i == 1 {
            // The first request arrived with a live token, the others with a dead one.
            emulation.revoke_access_tokens();
        }
        let request = request(
            Method::GET,
            &emulation.resource_url(),
            &[("authorization", &bearer)],
            "",
        );
        let client = client.clone();
        held.push(tokio::spawn(
            async move { send(&client, request).await.status },
        ));
        // One at a time, so that arrival order is spawn order.
        emulation.wait_for_held_requests(i + 1).await;
    }
    // Decided and counted on arrival; a fourth request is not held.
    let s = emulation.stats();
    assert_eq!((s.resource_ok, s.resource_unauthorized), (1, 2));
    assert_eq!(
        resource_status(&client, &emulation, &access).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(held.iter().all(|task| !task.is_finished()));

    emulation.release_held_requests(1);
    let mut held = held.into_iter();
    let first = held.next().unwrap();
    // Its token died while it was held: it keeps the answer it had on arrival.
    assert_eq!(first.await.unwrap(), StatusCode::OK);
    emulation.release_held_requests(1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (second, third) = (held.next().unwrap(), held.next().unwrap());
    assert!(!second.is_finished() && !third.is_finished());
    emulation.release_held_requests(2);
    assert_eq!(second.await.unwrap(), StatusCode::UNAUTHORIZED);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!third.is_finished());

    // Arming again frees what an earlier hold still holds.
    emulation.hold_resource_requests(0);
    assert_eq!(third.await.unwrap(), StatusCode::UNAUTHORIZED);
    let s = emulation.stats();
    assert_eq!((s.resource_ok, s.resource_unauthorized), (1, 3));
}

#[tokio::test]
async fn resource_tokens_are_counted_in_first_seen_order() {
    let client = client();
    let emulation = start(Api::UnionService).await;
    let (first, _) = login(&client, &emulation).await;
    let (second, _) = login(&client, &emulation).await;
    for token in [&first, &first, &second, "not-a-token", &first] {
        resource_status(&client, &emulation, token).await;
    }
    // Requests without a bearer token are not recorded.
    resource(&client, &emulation, None).await;
    resource(&client, &emulation, Some("Basic dTpw")).await;
    let expected = [(&*first, 3), (&*second, 1), ("not-a-token", 1)];
    assert_eq!(
        emulation.resource_tokens(),
        expected.map(|(token, uses)| (token.to_owned(), uses))
    );

    tokio::time::timeout(DEADLINE, emulation.wait_for_resource_tokens(3))
        .await
        .expect("three tokens were seen");
    let waiting = emulation.wait_for_resource_tokens(4);
    tokio::pin!(waiting);
    let early = tokio::time::timeout(Duration::from_millis(50), &mut waiting).await;
    assert!(early.is_err(), "woke before a fourth token was seen");
    let (third, _) = login(&client, &emulation).await;
    resource_status(&client, &emulation, &third).await;
    tokio::time::timeout(DEADLINE, waiting)
        .await
        .expect("woke for the fourth token");
    assert_eq!(emulation.resource_tokens().len(), 4);
}
