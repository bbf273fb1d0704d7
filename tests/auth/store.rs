//! The identity store shared by every mode: failures are not cached, concurrent builds are shared,
//! invalidation, the LRU bound and idle expiry.

use crate::common::*;

#[tokio::test]
async fn failing_identities_are_not_cached_and_evict_nothing() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    let ids = Identities::new(
        fake.transport(),
        AuthOptions {
            max_identities: 1,
            ..AuthOptions::default()
        },
    );
    let good = ids.resolve(&sp(CLIENT, SECRET)).await.unwrap();
    assert!(!good.is_proven(), "no token yet");
    assert_eq!((ids.cached(), ids.pending()), (0, 1));
    token_of(&good).await.unwrap();
    assert!(good.is_proven());
    assert_eq!((ids.cached(), ids.pending()), (1, 0));
    for i in 0..5 {
        let bad = ids
            .resolve(&sp(OTHER_CLIENT, &format!("wrong-secret-{i}")))
            .await
            .unwrap();
        token_of(&bad).await.unwrap_err();
        assert!(!bad.is_proven());
    }
    assert_eq!((ids.cached(), ids.pending()), (1, 0));
    let before = entra(&fake);
    let again = ids.resolve(&sp(CLIENT, SECRET)).await.unwrap();
    assert!(again.is_proven());
    token_of(&again).await.unwrap();
    assert_eq!(entra(&fake), before, "the proven identity kept its token");
}

#[tokio::test]
async fn concurrent_mounts_of_a_new_identity_share_one_build() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    let ids = identities(&fake);
    let request = sp(CLIENT, SECRET);
    let all = futures::future::join_all((0..8).map(|_| ids.resolve(&request))).await;
    let all: Vec<ResolvedIdentity> = all.into_iter().map(Result::unwrap).collect();
    assert!(
        all.iter()
            .all(|r| Arc::ptr_eq(&r.credential, &all[0].credential))
    );
    assert_eq!(ids.pending(), 1);
    let tokens = futures::future::join_all(all.iter().map(token_of)).await;
    assert!(tokens.iter().all(|t| t.is_ok()));
    assert_eq!(entra(&fake), 1);
    assert_eq!((ids.cached(), ids.pending()), (1, 0));
}

#[tokio::test]
async fn invalidate_token_forces_a_new_request() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    let ids = identities(&fake);
    let resolved = ids.resolve(&sp(CLIENT, SECRET)).await.unwrap();
    let before = token_of(&resolved).await.unwrap();
    resolved.invalidate_token();
    let after = token_of(&ids.resolve(&sp(CLIENT, SECRET)).await.unwrap())
        .await
        .unwrap();
    assert_ne!(before, after);
    assert_eq!(entra(&fake), 2);
}

#[tokio::test]
async fn least_recently_used_identities_are_evicted() {
    let fake = FakeAzure::start().await;
    for i in 0..3 {
        fake.add_client_secret(TENANT, CLIENT, &format!("secret-number-{i}"));
    }
    let ids = Identities::new(
        fake.transport(),
        AuthOptions {
            max_identities: 2,
            ..AuthOptions::default()
        },
    );
    for i in 0..3 {
        token_of(
            &ids.resolve(&sp(CLIENT, &format!("secret-number-{i}")))
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    }
    assert_eq!(ids.cached(), 2);
    assert_eq!(entra(&fake), 3);
    // The most recent two are still cached; the first was evicted.
    token_of(&ids.resolve(&sp(CLIENT, "secret-number-2")).await.unwrap())
        .await
        .unwrap();
    assert_eq!(entra(&fake), 3);
    token_of(&ids.resolve(&sp(CLIENT, "secret-number-0")).await.unwrap())
        .await
        .unwrap();
    assert_eq!(entra(&fake), 4);
}

#[tokio::test]
async fn idle_identities_expire() {
    let fake = FakeAzure::start().await;
    fake.add_client_secret(TENANT, CLIENT, SECRET);
    let options = AuthOptions {
        idle_ttl: Duration::from_millis(300),
        ..AuthOptions::default()
    };
    let ids = Identities::new(fake.transport(), options);
    token_of(&ids.resolve(&sp(CLIENT, SECRET)).await.unwrap())
        .await
        .unwrap();
    assert_eq!(ids.cached(), 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(ids.cached(), 0);
    token_of(&ids.resolve(&sp(CLIENT, SECRET)).await.unwrap())
        .await
        .unwrap();
    assert_eq!(entra(&fake), 2);
}
